"""CPU seconds of the backend per statement (load-independent): python cpu.py DB 'stmt' ..."""
import asyncio, os, sys, time
import asyncpg
from bench.cluster import start_cluster
cluster = start_cluster()
TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
async def sink(d): pass
async def main():
    conn = await asyncpg.connect(cluster.url(sys.argv[1]))
    pid = await conn.fetchval("select pg_backend_pid()")
    wm = await conn.fetchval("select watermark from vaxvault_backup.state")
    async with conn.transaction():
        for stmt in sys.argv[2:]:
            stmt = stmt.replace("$WM", wm)
            c0, t0 = cpu(pid), time.perf_counter()
            if stmt.startswith("COPY:"):
                await conn.copy_from_query(stmt[5:], output=sink, format="csv", quote="\x01", delimiter="\x02")
                r = ""
            else:
                r = await conn.fetchval(stmt)
            print(f"cpu {cpu(pid)-c0:5.2f} wall {time.perf_counter()-t0:5.2f}  {stmt[:90]!r} -> {str(r)[:60]}")
        raise SystemExit(0)  # rolls back
asyncio.run(main())
