"""Which plans PostgreSQL chose for the compiled statements asyncpg prepared (generic or custom),
from pg_prepared_statements, after N executions each on one connection.

  PYTHONPATH=. .venv/bin/python /work/notes/compiled2-scripts/plans.py URL [N]
"""
import asyncio
import random
import sys
import importlib.util

import asyncpg

spec = importlib.util.spec_from_file_location("stmt_cpu", __file__.replace("plans.py", "stmt_cpu.py"))
from api.compiled.compiler import Compiler
from api.schema import build_schema


async def main() -> None:
    import runpy
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    mod = runpy.run_path(__file__.replace("plans.py", "stmt_cpu.py"), run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 100")]
    await owner.close()
    conn = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
    for name in ["recipient_with_doses", "recipient_with_doses_staff", "center_latest_doses",
                 "recipients_page_100", "me_recipient"]:
        for i in range(n):
            rid, center = pairs[i % len(pairs)]
            sql, args = mod["statement"](compiler, name, rid, center)
            await conn.fetchrow(sql, *args)
        rows = await conn.fetch("SELECT generic_plans, custom_plans, left(statement, 60) s FROM "
                                "pg_prepared_statements ORDER BY prepare_time DESC LIMIT 1")
        print(name, [tuple(r)[:2] for r in rows])
    await conn.close()

asyncio.run(main())
