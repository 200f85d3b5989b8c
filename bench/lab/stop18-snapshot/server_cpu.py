"""Backend CPU seconds of the statements a full snapshot runs, per table, for alternatives.
    PYTHONPATH=. .venv/bin/python /work/notes/snapshot-scripts/server_cpu.py DBNAME"""
import asyncio, sys, time, os
import asyncpg
sys.path.insert(0, os.path.dirname(__file__))
from bench.cluster import start_cluster
from backup.capture.catalog import describe_tables
from backup.snapshot import plan_chunks, _range, _key_columns, _key_json, quote_ident
TICK = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    raw = open(f"/proc/{pid}/stat").read(); f = raw[raw.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / TICK

async def main():
    c = start_cluster()
    conn = await asyncpg.connect(c.url(sys.argv[1]))
    pid = await conn.fetchval("select pg_backend_pid()")
    tables = await describe_tables(conn, "public")
    totals = {}
    async def timed(label, coro):
        c0 = cpu(pid); w0 = time.perf_counter()
        r = await coro
        totals[label] = totals.get(label, [0, 0])
        totals[label][0] += cpu(pid) - c0; totals[label][1] += time.perf_counter() - w0
        return r
    n = [0]
    async def sink(d):
        n[0] += len(d)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for t in tables:
            cols = ", ".join(quote_ident(x.name) for x in t.columns)
            await timed("whole COPY t", conn.copy_from_table(t.name, output=sink))
            for task in await plan_chunks(conn, t, 100_000):
                pred, params = _range(task)
                await timed("chunk COPY ordered", conn.copy_from_query(
                    f"SELECT {cols} FROM {t.qualified} WHERE {pred} ORDER BY {_key_columns(t)}", *params, output=sink))
                await timed("chunk COPY unordered", conn.copy_from_query(
                    f"SELECT {cols} FROM {t.qualified} WHERE {pred}", *params, output=sink))
                aggs = [f"(SELECT {_key_json(t)}::text FROM {t.qualified} WHERE {pred} ORDER BY {_key_columns(t)} {d} LIMIT 1)" for d in ("ASC", "DESC")]
                await timed("first/last key", conn.fetchrow("SELECT " + ", ".join(aggs), *params))
                if t.date_columns:
                    ex = ", ".join(f"to_jsonb({fn}({quote_ident(col)}))::text" for col in t.date_columns for fn in ("min", "max"))
                    await timed("date bounds", conn.fetchrow(f"SELECT ARRAY[{ex}] FROM {t.qualified} WHERE {pred}", *params))
        print("raw bytes (all variants)", n[0])
        for k, (cs, ws) in totals.items():
            print(f"{k:24s} cpu {cs:6.2f} s  wall {ws:6.2f} s")
        for t in tables[:0]:
            pass
    for t in tables:
        if t.name in ("doses", "recipients"):
            task = (await plan_chunks(conn, t, 100_000))[3]
            pred, params = _range(task)
            cols = ", ".join(quote_ident(x.name) for x in t.columns)
            for q in (f"SELECT {cols} FROM {t.qualified} WHERE {pred} ORDER BY {_key_columns(t)}",
                      f"SELECT {cols} FROM {t.qualified} WHERE {pred}"):
                plan = await conn.fetch("EXPLAIN " + q, *params)
                print(t.name, " | ".join(r[0].strip() for r in plan))
asyncio.run(main())
