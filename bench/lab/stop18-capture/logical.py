"""Prototype measure of capture by logical decoding (not shipped): insert cost with a logical slot
and REPLICA IDENTITY FULL on doses (old images of updates/deletes in the WAL) and no trigger,
beside no capture and the trigger; then the server CPU to decode what the rounds wrote.
Needs the bench cluster at wal_level = logical:
  PYTHONPATH=. .venv/bin/python /work/notes/capture-scripts/logical.py --seconds 5 --serial 8000 --rounds 3 --variants off,slot,on
"""
import asyncio, time
import asyncpg
from bench import capture_cost as cc

async def _slot(conn):
    await conn.execute("ALTER TABLE doses REPLICA IDENTITY FULL")
    await conn.execute("SELECT pg_create_logical_replication_slot('bench_capture', 'test_decoding')")

async def _decode_and_drop(url):
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'bench_capture' "
                                   "AND database = current_database()"):
            return
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        c0, t0 = cc.process_cpu(pid), time.perf_counter()
        n = await conn.fetchval("SELECT count(*) FILTER (WHERE data LIKE 'table public.doses: INSERT%') "
                                "FROM pg_logical_slot_get_changes('bench_capture', NULL, NULL, 'include-xids', '1', 'include-timestamp', '1')")
        cpu, wall = cc.process_cpu(pid) - c0, time.perf_counter() - t0
        print(f"decoded {n} inserts: server cpu {cpu:.2f} s ({cpu / max(n, 1) * 1e6:.1f} us per insert), wall {wall:.2f} s")
        await conn.execute("SELECT pg_drop_replication_slot('bench_capture')")
    finally:
        await conn.close()

_drop = cc.drop_database
def drop(cluster, name):
    asyncio.run(_decode_and_drop(cluster.url(name)))
    _drop(cluster, name)
cc.drop_database = drop
cc.VARIANTS["slot"] = _slot
if __name__ == "__main__":
    cc.main()
