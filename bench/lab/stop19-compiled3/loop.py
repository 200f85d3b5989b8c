"""Run one variant of a compiled statement in a loop for S seconds on one connection and print
the backend pid first (for perf record -p):
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/loop.py URL NAME VARIANT SECONDS"""
import asyncio
import random
import runpy
import sys
import time

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema


async def main() -> None:
    url, name, variant, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    v = runpy.run_path("bench/lab/stop19-compiled3/variants.py", run_name="lib")
    role, transform = v["VARIANTS"][variant]
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    stmts = [mod["statement"](compiler, name, rid, center) for rid, center in pairs]
    if transform == "peer":
        peer = open("bench/lab/stop19-compiled3/peer_center.sql").read()
        stmts = [(peer, [a[4]]) for s, a in stmts]
    else:
        stmts = [(transform(s), a) for s, a in stmts]
    c = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"} if role == "api" else {})
    print(await c.fetchval("SELECT pg_backend_pid()"), flush=True)
    rng = random.Random(1)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        sql, args = stmts[rng.randrange(len(stmts))]
        await c.fetchrow(sql, *args)
        n += 1
    print("executions", n)

asyncio.run(main())
