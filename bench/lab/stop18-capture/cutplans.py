"""Summary, line COPY and trim of a ~250k-change log with and without the txid index (1M bench DB).
PYTHONPATH=. .venv/bin/python /work/notes/capture-scripts/cutplans.py"""
import asyncio, time
import asyncpg
from backup.capture import changelog, triggers
from bench import capture_cost as cc
from bench.cluster import clone_database, drop_database, seeded_database, start_cluster

cluster = start_cluster()
url = clone_database(cluster, seeded_database(cluster, 1_000_000).name, "bench_scratch_cutplans")
async def sink(_): pass
async def measure(conn, label, previous, position):
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    async with conn.transaction(isolation="repeatable_read"):
        for name, run in (("summary", lambda: conn.fetchrow(changelog._SUMMARY, previous)),
                          ("lines", lambda: conn.copy_from_query(changelog._LINES, previous, output=sink, format="csv",
                                                                  delimiter="\x02", quote="\x01"))):
            c0, t0 = cc.process_cpu(pid), time.perf_counter()
            if name == "lines":
                async with changelog._planner(conn, changelog._ORDERED_SCAN):
                    await run()
            else:
                await run()
            print(f"{label:>10} {name:8} cpu {cc.process_cpu(pid) - c0:5.2f} s wall {time.perf_counter() - t0:5.2f} s")
    tx = conn.transaction(); await tx.start()
    c0, t0 = cc.process_cpu(pid), time.perf_counter()
    await conn.execute(f"DELETE FROM {triggers.SCHEMA}.changes WHERE txid < pg_snapshot_xmax($1::text::pg_snapshot) "
                       "AND pg_visible_in_snapshot(txid, $1::text::pg_snapshot)", position)
    print(f"{label:>10} trim     cpu {cc.process_cpu(pid) - c0:5.2f} s wall {time.perf_counter() - t0:5.2f} s")
    await tx.rollback()
async def main():
    conn = await asyncpg.connect(url)
    await triggers.install(conn)
    previous = await conn.fetchval("SELECT pg_current_snapshot()::text")
    await conn.execute("UPDATE doses SET lot_number = 'CUTPLANS' WHERE id % 7 = 0")
    position = await conn.fetchval("SELECT pg_current_snapshot()::text")
    print("changes", await conn.fetchval(f"SELECT count(*) FROM {triggers.SCHEMA}.changes"))
    for r in range(2):
        await measure(conn, "no index", previous, position)
        await conn.execute(f"CREATE INDEX changes_txid_idx ON {triggers.SCHEMA}.changes (txid)")
        await measure(conn, "txid index", previous, position)
        await conn.execute(f"DROP INDEX {triggers.SCHEMA}.changes_txid_idx")
    await conn.close()
try:
    asyncio.run(main())
finally:
    drop_database(cluster, "bench_scratch_cutplans")
