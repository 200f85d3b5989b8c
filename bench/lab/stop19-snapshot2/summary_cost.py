"""Backend CPU of the chunk statements and cheaper zone-map variants on doses and recipients.
    PYTHONPATH=. .venv/bin/python bench/lab/stop19-snapshot2/summary_cost.py DBNAME [rounds]"""
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
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    pid = await conn.fetchval("select pg_backend_pid()")
    tables = [t for t in await describe_tables(conn, "public") if t.name in ("doses", "recipients")]
    totals = {}
    async def timed(label, coro):
        c0 = cpu(pid); r = await coro
        totals[label] = totals.get(label, 0) + cpu(pid) - c0
        return r
    async def sink(d):
        pass
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for rnd in range(rounds):
          for t in tables:
            cols = ", ".join(quote_ident(x.name) for x in t.columns)
            key = quote_ident(t.primary_key[0])
            await timed("COPY table", conn.copy_from_table(t.name, output=sink))
            await timed("COPY (SELECT * FROM table)", conn.copy_from_query(f"SELECT * FROM {t.qualified}", output=sink))
            for task in await plan_chunks(conn, t, 100_000):
                src = f"FROM {t.qualified} WHERE {_range(task)}"
                await timed("chunk COPY cols", conn.copy_from_query(f"SELECT {cols} {src}", output=sink))
                await timed("chunk COPY *", conn.copy_from_query(f"SELECT * {src}", output=sink))
                await timed("chunk COPY binary", conn.copy_from_query(f"SELECT * {src}", output=sink, format="binary"))
                await timed("summary (current)", conn.fetchval(_summary_sql(task)))
                await timed("count(*)", conn.fetchval(f"SELECT count(*) {src}"))
                await timed("min/max key", conn.fetchrow(f"SELECT min({key}), max({key}) {src}"))
                ex = ", ".join(f"{fn}({quote_ident(col)})" for col in t.date_columns for fn in ("min", "max"))
                await timed("min/max key+dates raw", conn.fetchrow(f"SELECT min({key}), max({key}), {ex} {src}"))
    for k, v in totals.items():
        print(f"{k:36s} cpu {v/rounds:6.2f} s")
asyncio.run(main())
