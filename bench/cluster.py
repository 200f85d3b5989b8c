"""The benchmark PostgreSQL cluster under bench/.cache/, with seeded databases built once.

A seeded database is reused while its marker file exists and the database still holds the
number of recipients the marker names; anything else is rebuilt from scratch.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from api.db.migrate import migrate
from api.embedded_postgres import EmbeddedPostgres
from bench.progress import say

CACHE = Path(__file__).resolve().parent / ".cache"
VAXVAULT = Path(sys.executable).parent / "vaxvault"


@dataclass(frozen=True)
class SeededDatabase:
    name: str
    url: str
    recipients: int
    seed_seconds: float | None  # None when it came from the cache


def database_name(recipients: int) -> str:
    return f"bench_{recipients}"


def start_cluster() -> EmbeddedPostgres:
    """The durable (not throwaway) cluster the benchmarks share, started if needed."""
    cluster = EmbeddedPostgres(CACHE / "postgres")
    cluster.start()
    return cluster


async def _admin(url: str, *statements: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        result: object = None
        for statement in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                result = await conn.fetchval(statement)
            else:
                result = await conn.execute(statement)  # scripts of several statements too
        return result
    finally:
        await conn.close()


def admin(url: str, *statements: str) -> object:
    """Run statements on one connection; return the value of the last."""
    return asyncio.run(_admin(url, *statements))


def with_database(cluster: EmbeddedPostgres, name: str) -> str:
    return cluster.url(name)


def _marker(name: str) -> Path:
    return CACHE / f"{name}.seeded"


def _cached_count(cluster: EmbeddedPostgres, name: str) -> int | None:
    if not _marker(name).exists():
        return None
    exists = admin(cluster.url(), f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists:
        return None
    return int(str(admin(cluster.url(name), "SELECT count(*) FROM recipients")))


def seeded_database(cluster: EmbeddedPostgres, recipients: int) -> SeededDatabase:
    """A database with `recipients` seeded recipients (seed 1), from the cache when possible."""
    name = database_name(recipients)
    url = cluster.url(name)
    if _cached_count(cluster, name) == recipients:
        say(f"using cached {name} (applying any new migrations)")
        asyncio.run(migrate(url))
        return SeededDatabase(name, url, recipients, None)
    say(f"building {name}: migrate + seed {recipients:,} recipients (cached afterwards)")
    _marker(name).unlink(missing_ok=True)
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    asyncio.run(migrate(url))
    started = time.perf_counter()
    env_url = {"VAXVAULT_DATABASE_URL": url}
    subprocess.run([str(VAXVAULT), "db", "seed", "--recipients", str(recipients), "--seed", "1"],
                   check=True, env={**os.environ, **env_url})
    seconds = time.perf_counter() - started
    admin(url, "VACUUM ANALYZE")
    _marker(name).write_text(f"{recipients}\n")
    return SeededDatabase(name, url, recipients, round(seconds, 1))


def clone_database(cluster: EmbeddedPostgres, source: str, name: str) -> str:
    """A scratch copy of `source` (file copy: fast, and the source stays untouched)."""
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
          f'CREATE DATABASE "{name}" TEMPLATE "{source}" STRATEGY FILE_COPY')
    return cluster.url(name)


def drop_database(cluster: EmbeddedPostgres, name: str) -> None:
    admin(cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
