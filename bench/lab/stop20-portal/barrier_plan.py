"""EXPLAIN (generic plan) of one compiled statement with the view as a barrier and not:
  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/barrier_plan.py URL NAME"""
import asyncio
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema


async def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    rid, center = await owner.fetchrow("SELECT id, center_id FROM recipients ORDER BY id LIMIT 1 OFFSET 777")
    sql, args = mod["statement"](compiler, name, rid, center)
    api = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
    for barrier in (False, True):
        await owner.execute(f"ALTER VIEW vaxvault_center_dosed SET (security_barrier = {barrier})")
        async with api.transaction():
            # The principal's settings are set inside the statement; EXPLAIN ANALYZE runs it.
            rows = await api.fetch("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql, *args)
        print(f"--- barrier={barrier}: {len(rows)} plan lines")
        print("\n".join(r[0] for r in rows))
    await owner.execute("ALTER VIEW vaxvault_center_dosed SET (security_barrier = true)")


if __name__ == "__main__":
    asyncio.run(main())
