"""Backend CPU of zone-map statements per chunk (doses, recipients): all date columns, the key only.
    PYTHONPATH=. .venv/bin/python bench/lab/stop19-snapshot2/summary_variants.py DBNAME [rounds]"""
import asyncio, sys, os
import asyncpg
from bench.cluster import start_cluster
from backup.capture.catalog import describe_tables
from backup.snapshot import plan_chunks, _range, _summary_sql, quote_ident
TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    raw = open(f"/proc/{pid}/stat").read(); f = raw[raw.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK
async def main():
    c = start_cluster()
    conn = await asyncpg.connect(c.url(sys.argv[1]))
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pid = await conn.fetchval("select pg_backend_pid()")
    tables = [t for t in await describe_tables(conn, "public") if t.name in ("doses", "recipients")]
    totals = {}
    async def timed(label, coro):
        c0 = cpu(pid); r = await coro
        totals[label] = totals.get(label, 0) + cpu(pid) - c0
        return r
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for rnd in range(rounds):
          for t in tables:
            key = quote_ident(t.primary_key[0])
            for task in await plan_chunks(conn, t, 100_000):
                src = f"FROM {t.qualified} WHERE {_range(task)}"
                await timed("summary, every date column (now)", conn.fetchval(_summary_sql(task)))
                await timed("count(*), min/max key", conn.fetchrow(f"SELECT count(*), min({key}), max({key}) {src}"))
                await timed("count(*)", conn.fetchval(f"SELECT count(*) {src}"))
    for k, v in totals.items():
        print(f"{k:36s} cpu {v/rounds:6.2f} s")
asyncio.run(main())
