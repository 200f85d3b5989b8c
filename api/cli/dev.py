"""`vaxvault dev`: the embedded default, one command from clone to a running API.

Starts a private PostgreSQL under the state directory (unless VAXVAULT_DATABASE_URL is set),
migrates, seeds a demo registry once, prints an admin token and a curl example, and serves.
Ctrl-C stops the server and the database; running it again reuses the data.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex

from api.auth import mint_token, signing_secret
from api.cli.beside_dev import DATABASE_NAME, with_dev_repository
from api.cli.db import seed_database
from api.cli.serve import add_server_flags, endpoint, serve
from api.db.connect import connect
from api.db.migrate import migrate
from api.embedded_postgres import EmbeddedPostgres
from api.principal import Role
from api.settings import Settings

DEMO_RECIPIENTS = 10_000


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dev", help="embedded PostgreSQL, migrate, demo seed, serve")
    add_server_flags(parser)
    parser.add_argument("--recipients", type=int, default=DEMO_RECIPIENTS,
                        help="demo recipients to seed on first start")
    parser.set_defaults(handler=run)


async def ensure_database(server_url: str, name: str) -> None:
    conn = await connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def prepare(url: str, recipients: int) -> str:
    """Migrate and seed once; return a line saying what was done."""
    await migrate(url)
    conn = await connect(url)
    try:
        seeded = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM recipients)")
    finally:
        await conn.close()
    if seeded:
        return "reusing the existing registry"
    result = await seed_database(url, recipients, 1, replace=False)
    return (f"seeded {result['recipients']} demo recipients and {result['doses']} doses "
            f"in {result['seconds']} s")


def run(args: argparse.Namespace, settings: Settings) -> int:
    embedded = None
    if settings.database_url is None:
        embedded = EmbeddedPostgres(settings.state_dir / "postgres")
        print(f"starting the embedded PostgreSQL in {embedded.data_dir} ...", flush=True)
        server_url = embedded.start()
        asyncio.run(ensure_database(server_url, DATABASE_NAME))
        settings = settings.with_overrides(database_url=embedded.url(DATABASE_NAME))
    settings = with_dev_repository(settings)
    try:
        print(asyncio.run(prepare(settings.require_database_url(), args.recipients)), flush=True)
        token = mint_token(signing_secret(settings), Role.ADMIN, sub="dev-admin", ttl_s=7 * 86400)
        graphql = f"{endpoint(args.host, args.port, args.fd)}/graphql"
        query = '{"query": "{ districts { id name division } }"}'
        print(f"""
vaxvault is serving GraphQL at {graphql} (GraphiQL in a browser)
admin console: {graphql.removesuffix('/graphql')}/console (sign in with the admin token below)
database: {settings.database_url}
admin token (7 days): {token}

try:
  curl -s {graphql} -H 'Content-Type: application/json' \\
    -H 'Authorization: Bearer {token}' -d {shlex.quote(query)}

Ctrl-C stops the server{' and the database' if embedded else ''}.
""", flush=True)
        serve(settings, args.host, args.port, fd=args.fd)
    finally:
        if embedded is not None:
            embedded.stop()
            print("embedded PostgreSQL stopped", flush=True)
    return 0
