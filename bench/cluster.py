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

# Server settings of the bench cluster beyond every embedded cluster's (api.embedded_postgres).
# shared_buffers: the embedded default (256MB) is 4% of the 10M database (6.8 GB; doses' six
# indexes alone 2.1 GB), far below the ~25% of RAM a server holding such a registry is given. At
# 256MB the 266,561-row write-back at 10M evicts the index pages it dirties as it goes (backend
# waits: 12% reading, 9% writing pages; backend CPU 10.6-11.3 s vs 8.6-9.6 s at 1M), an artefact
# of the bench box, not of the restore; at 2GB no page is written back mid-statement (8.8-10.7 s;
# bench/lab/stop20-scale/upd.py), and the whole restore costs the same CPU at 10M as at 1M
# (0.98-1.04x, grow.py). 2GB is 9% of the bench machine's 23 GB.
# max_wal_size: at 2GB the 10M section (damage ~0.9 GB of WAL, restore ~1.1 GB, most of it full
# page images of index pages first touched since the last checkpoint) ran checkpoints 22-29 s
# apart ("checkpoints are occurring too frequently", the server's own hint: raise it), each one
# making the next touch of every page log a full image again, during the restore being timed.
SETTINGS = {"shared_buffers": "2GB", "max_wal_size": "4GB"}


@dataclass(frozen=True)
class SeededDatabase:
    name: str
    url: str
    recipients: int
    seed_seconds: float | None  # None when it came from the cache


def database_name(recipients: int) -> str:
    return f"bench_{recipients}"


def start_cluster() -> EmbeddedPostgres:
    """The durable (not throwaway) cluster the benchmarks share, started if needed, with
    SETTINGS (set with ALTER SYSTEM, then restarted, when any differs)."""
    cluster = EmbeddedPostgres(CACHE / "postgres")
    cluster.start()
    changed = admin(cluster.url(), "SELECT count(*) FROM pg_settings WHERE " + " OR ".join(
        f"(name = '{name}' AND setting::bigint * coalesce(pg_size_bytes(CASE WHEN unit ~ '^[0-9]' "
        f"THEN unit ELSE '1' || unit END), 1) "
        f"<> pg_size_bytes('{value}'))" for name, value in SETTINGS.items()))
    if changed:
        say("restarting the bench cluster with " + ", ".join(f"{k} = {v}" for k, v in SETTINGS.items()))
        admin(cluster.url(), *(f"ALTER SYSTEM SET {name} = '{value}'" for name, value in SETTINGS.items()))
        cluster.stop()
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
