"""`vaxvault db migrate` and `vaxvault db seed`."""

from __future__ import annotations

import argparse
import asyncio
import time

from api.cli.output import add_json_flag, emit, whole_number
from api.db.connect import connect
from api.db.migrate import migrate
from api.db.seed import SeedConflict, seed
from api.errors import DatabaseError
from api.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database schema and demo data")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION")
    actions.required = True
    migrate_parser = actions.add_parser("migrate", help="apply pending migrations")
    add_json_flag(migrate_parser)
    migrate_parser.set_defaults(handler=run_migrate)
    seed_parser = actions.add_parser("seed", help="load a deterministic synthetic registry")
    seed_parser.add_argument("--recipients", type=whole_number(0), required=True)
    seed_parser.add_argument("--seed", type=int, default=1)
    seed_parser.add_argument("--replace", action="store_true",
                             help="discard existing recipients, doses and centers first")
    add_json_flag(seed_parser)
    seed_parser.set_defaults(handler=run_seed)



def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(migrate(settings.require_database_url()))
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    emit(args, f"applied {len(names)} migration(s){': ' + ', '.join(names) if names else ''}",
         {"applied": names})
    return 0


async def seed_database(url: str, recipients: int, seed_value: int, replace: bool) -> dict:
    conn = await connect(url)
    try:
        started = time.perf_counter()
        try:
            summary = await seed(conn, recipients, seed_value, replace=replace)
        except SeedConflict as exc:
            raise DatabaseError(str(exc)) from exc
        return {"recipients": summary.recipients, "doses": summary.doses,
                "centers": summary.centers, "seconds": round(time.perf_counter() - started, 2)}
    finally:
        await conn.close()


def run_seed(args: argparse.Namespace, settings: Settings) -> int:
    result = asyncio.run(seed_database(settings.require_database_url(), args.recipients,
                                       args.seed, args.replace))
    emit(args, f"seeded {result['recipients']} recipients, {result['doses']} doses, "
               f"{result['centers']} centers in {result['seconds']} s", result)
    return 0
