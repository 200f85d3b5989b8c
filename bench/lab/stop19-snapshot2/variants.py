"""Backend CPU of alternative chunk statements on doses and recipients (1M scratch clone).
    PYTHONPATH=. .venv/bin/python /work/notes/snapshot-scripts/variants.py DBNAME"""
import asyncio, sys, time, os
import asyncpg
from bench.cluster import start_cluster
from backup.capture.catalog import describe_tables
from backup.snapshot import plan_chunks, _range, _key_columns, quote_ident
TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    raw = open(f"/proc/{pid}/stat").read(); f = raw[raw.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK
async def main():
    c = start_cluster()
    conn = await asyncpg.connect(c.url(sys.argv[1]))
    pid = await conn.fetchval("select pg_backend_pid()")
    tables = [t for t in await describe_tables(conn, "public") if t.name in ("doses", "recipients")]
    totals = {}; nbytes = {}
    async def timed(label, coro):
        c0 = cpu(pid); r = await coro
        totals[label] = totals.get(label, 0) + cpu(pid) - c0
        return r
    def sink_for(label):
        async def sink(d):
            nbytes[label] = nbytes.get(label, 0) + len(d)
        return sink
    await conn.execute("SET work_mem = '64MB'")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for rnd in range(2):
          for t in tables:
            cols = ", ".join(quote_ident(x.name) for x in t.columns)
            pk = _key_columns(t)
            pages = await conn.fetchval("SELECT pg_relation_size($1::regclass) / 8192", t.qualified)
            ex = ", ".join(f"{fn}({quote_ident(col)})" for col in t.date_columns for fn in ("min", "max"))
            await timed("whole COPY", conn.copy_from_table(t.name, output=sink_for("whole")))
            for task in await plan_chunks(conn, t, 100_000):
                pred, params = _range(task)
                await timed("A key-range ordered COPY", conn.copy_from_query(
                    f"SELECT {cols} FROM {t.qualified} WHERE {pred} ORDER BY {pk}", *params, output=sink_for("A")))
                await timed("A bounds", conn.fetchrow(f"SELECT {ex} FROM {t.qualified} WHERE {pred}", *params))
            step = 2048
            for b in range(0, pages, step):
                tid = f"ctid >= '({b},0)'::tid AND ctid < '({b + step},0)'::tid"
                await timed("B ctid COPY", conn.copy_from_query(f"SELECT {cols} FROM {t.qualified} WHERE {tid}", output=sink_for("B")))
                await timed("B ctid bounds", conn.fetchrow(f"SELECT min({pk}), max({pk}), {ex} FROM {t.qualified} WHERE {tid}"))
                nulls = ", ".join("NULL" for _ in t.columns[1:])
                q = (f"WITH c AS MATERIALIZED (SELECT {cols} FROM {t.qualified} WHERE {tid}) "
                     f"(SELECT {cols} FROM c) UNION ALL "
                     f"(SELECT json_build_array(min({pk}), max({pk}), {ex})::text, {nulls} FROM c)")
                # type mismatch unless first column is text: only measure on a text-compatible form
                q = (f"WITH c AS MATERIALIZED (SELECT {cols} FROM {t.qualified} WHERE {tid}) "
                     f"SELECT count(*) FROM (SELECT * FROM c) s UNION ALL "
                     f"SELECT count(*) FROM (SELECT min({pk}), max({pk}), {ex} FROM c) a")
                await timed("C cte (store+2 reads, no output)", conn.fetch(q))
                await timed("C0 plain count", conn.fetch(f"SELECT count(*) FROM {t.qualified} WHERE {tid}"))
    for k, v in totals.items():
        print(f"{k:36s} cpu {v/2:6.2f} s")
    print({k: v // 2 for k, v in nbytes.items()})
asyncio.run(main())
