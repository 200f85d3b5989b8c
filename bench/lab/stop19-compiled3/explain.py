"""EXPLAIN (ANALYZE, BUFFERS) of one compiled statement as the API role, after warming the
prepared statement so the plan is the one the server runs (generic after 5):
  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/explain.py URL NAME RID CENTER [--custom]"""
import asyncio
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema


async def main() -> None:
    url, name, rid, center = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    sql, args = mod["statement"](compiler, name, rid, center)
    mode = "force_custom_plan" if "--custom" in sys.argv else "force_generic_plan"
    conn = await asyncpg.connect(url, server_settings={"role": sys.argv[5] if len(sys.argv) > 5 and not sys.argv[5].startswith("--") else "vaxvault_api",
                                                        "plan_cache_mode": mode})
    await conn.execute(f"PREPARE p AS {sql}")
    literal = ", ".join("NULL" if a is None else
                        ("'" + str(a).replace("'", "''") + "'") for a in args)
    for _ in range(3):
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE) EXECUTE p({literal})")
    print("\n".join(r[0] for r in rows))
    await conn.close()

asyncio.run(main())
