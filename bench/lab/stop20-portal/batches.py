"""Audit commits per compiled read under wrk (16 connections, 1 worker): transactions committed
in the database minus requests served = audit batches (each read is a transaction of its own).
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/batches.py QUERY SECONDS"""
import sys

import asyncio

import asyncpg

from bench import portal
from bench.cluster import seeded_database, start_cluster
from bench.compare import _population
from bench.server import ours

name, seconds = sys.argv[1], int(sys.argv[2])
db = seeded_database(start_cluster(), 1_000_000)
population = _population(db.url, 1_000_000)


async def _commits() -> int:
    conn = await asyncpg.connect(db.url)
    try:
        return await conn.fetchval("SELECT xact_commit FROM pg_stat_database "
                                   "WHERE datname = current_database()")
    finally:
        await conn.close()


def commits() -> int:
    return asyncio.run(_commits())


with ours(db.url, workers=1) as url:
    portal.measure_one("compiled", url, name, portal.ours_requests, population, 2, 16, threads=1)
    before = commits()
    result = portal.measure_one("compiled", url, name, portal.ours_requests, population, seconds,
                                16, threads=1)
    import time
    time.sleep(1.0)  # pg_stat_database is flushed by backends about once a second
    after = commits()
n = result.load.requests
print(f"{name}: {n} requests, {after - before} commits -> {(after - before - n)} audit batches, "
      f"{n / max(after - before - n, 1):.1f} rows per batch")
