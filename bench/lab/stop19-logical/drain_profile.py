"""Where a drain's CPU goes: N single-row inserts into a logically captured table, then one drain;
backend CPU (from /proc) and this process's CPU, with a cProfile of the client.

    PYTHONPATH=. .venv/bin/python bench/lab/stop19-logical/drain_profile.py URL [N]
URL: a database on a server with wal_level=logical (the script creates table drain_bench).
"""
import asyncio
import cProfile
import os
import pstats
import sys
import time

import asyncpg

from backup.capture import logical
from backup.capture.triggers import install
from bench.writes import process_cpu


async def main(url: str, n: int) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute("DROP SCHEMA IF EXISTS vaxvault_backup CASCADE; DROP PUBLICATION IF EXISTS vaxvault_capture; "
                       "DROP TABLE IF EXISTS drain_bench; CREATE TABLE drain_bench (id bigint PRIMARY KEY, "
                       "recipient_id bigint, vaccine_code text, lot_number text, administered_on date, "
                       "center_id int, recorded_by text, created_at timestamptz DEFAULT now())")
    await install(conn, ("drain_bench",), mode="logical")
    await conn.execute("CREATE OR REPLACE PROCEDURE p(n int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP "
                       "INSERT INTO drain_bench VALUES (i, i, 'AZD1222', 'BENCH00001', DATE '2023-01-01', 1, "
                       "'bench'); COMMIT; END LOOP; END $$")
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(f"CALL p({n})")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu0, c0, t0 = process_cpu(pid), os.times(), time.perf_counter()
    profile = cProfile.Profile()
    if os.environ.get("PROFILE"):
        profile.enable()
    async with conn.transaction(isolation="repeatable_read"):
        await logical.lock(conn)
        count = await logical.drain(conn, url)
    profile.disable()
    c1 = os.times()
    backend = process_cpu(pid) - cpu0
    client = c1.user - c0.user + c1.system - c0.system
    print(f"{count} changes: wall {time.perf_counter() - t0:.2f} s, backend {backend:.2f} s "
          f"({backend / count * 1e6:.1f} us/change), client {client:.2f} s ({client / count * 1e6:.1f} us/change)")
    if os.environ.get("PROFILE"):
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)
    await conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM vaxvault_backup.decoding")
    await conn.close()


asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50000))
