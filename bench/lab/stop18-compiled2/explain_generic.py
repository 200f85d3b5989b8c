"""EXPLAIN ANALYZE of the generic plan of one compiled statement, as the API role:
  PYTHONPATH=. .venv/bin/python explain_generic.py URL NAME RID CENTER [runs]"""
import asyncio
import json
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema


async def main() -> None:
    url, name, rid, center = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    mod = runpy.run_path(__file__.replace("explain_generic.py", "stmt_cpu.py"), run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    sql, args = mod["statement"](compiler, name, rid, center)
    conn = await asyncpg.connect(url, server_settings={"role": "vaxvault_api",
                                                        "plan_cache_mode": "force_generic_plan"})
    await conn.execute(f"PREPARE p AS {sql}")
    literal = ", ".join("NULL" if a is None else "'" + str(a).replace("'", "''") + "'" for a in args)
    for i in range(runs):
        async with conn.transaction():
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, SUMMARY, COSTS OFF) EXECUTE p({literal})")
            tr = conn.transaction(); 
            raise_ = True
        if i == runs - 1:
            print("\n".join(r[0] for r in rows))
    await conn.close()

asyncio.run(main())
