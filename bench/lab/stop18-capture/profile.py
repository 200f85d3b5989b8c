"""perf profile of one backend running N single-row insert transactions (the serial loop).
PYTHONPATH=. .venv/bin/python /work/notes/capture-scripts/profile.py VARIANT N"""
import asyncio, subprocess, sys
import asyncpg
sys.argv, (variant, n) = sys.argv[:1], sys.argv[1:3]
sys.path.insert(0, "/work/notes/capture-scripts")
import variants  # noqa: registers the experiment variants
from bench import capture_cost as cc
from bench.cluster import clone_database, drop_database, seeded_database, start_cluster

cluster = start_cluster()
src = seeded_database(cluster, 1_000_000).name
url = clone_database(cluster, src, "bench_scratch_profile")
async def main():
    await cc._setup(url, cc.VARIANTS[variant])
    conn = await asyncpg.connect(url)
    await conn.execute(cc._SERIAL)
    await conn.execute("SET synchronous_commit = off")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await conn.execute("CALL public.bench_serial_inserts(1, 200)")
    perf = subprocess.Popen(["perf", "record", "-F", "2000", "-g", "-p", str(pid), "-o", f"/tmp/capture-perf-{variant}.data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(0.5)
    await conn.execute(f"CALL public.bench_serial_inserts(1000, {n})")
    perf.send_signal(2); perf.wait()
    await conn.close()
try:
    asyncio.run(main())
finally:
    drop_database(cluster, "bench_scratch_profile")
