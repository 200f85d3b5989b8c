"""Real servers for the tests: a PostgreSQL cluster and an S3 endpoint over HTTP.

PostgreSQL: VAXVAULT_TEST_DATABASE_URL (a superuser URL) when set, else a throwaway embedded
cluster per test process. Each test gets its own database cloned from a migrated template.
S3: VAXVAULT_TEST_S3_ENDPOINT_URL when set (e.g. MinIO), else moto's ThreadedMotoServer on
127.0.0.1 with a free port, reached by boto3 over HTTP exactly like production.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from api.db.migrate import migrate
from api.db.seed import seed

TEST_DATABASE_URL = os.environ.get("VAXVAULT_TEST_DATABASE_URL") or None
TEST_S3_ENDPOINT_URL = os.environ.get("VAXVAULT_TEST_S3_ENDPOINT_URL") or None
# Tests run in parallel processes (pytest-xdist): names carry the worker to stay apart.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
SEEDED_RECIPIENTS = 400


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{WORKER}_{uuid.uuid4().hex[:10]}"


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"{clause}'))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _prepare_template(url: str, recipients: int) -> None:
    await migrate(url)
    if recipients:
        conn = await asyncpg.connect(url)
        try:
            await seed(conn, recipients, seed_value=7)
        finally:
            await conn.close()


def create_template(server_url: str, prefix: str, recipients: int) -> str:
    name = unique_name(prefix)
    url = create_database(server_url, name)
    asyncio.run(_prepare_template(url, recipients))
    return name


@contextmanager
def postgres_server(tmp_root: Path) -> Iterator[str]:
    """A superuser URL to a PostgreSQL server for this test process."""
    if TEST_DATABASE_URL:
        yield TEST_DATABASE_URL
        return
    from api.embedded_postgres import EmbeddedPostgres

    cluster = EmbeddedPostgres(tmp_root / f"pg-{WORKER}", throwaway=True)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


@contextmanager
def s3_endpoint() -> Iterator[str]:
    if TEST_S3_ENDPOINT_URL:
        yield TEST_S3_ENDPOINT_URL
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
