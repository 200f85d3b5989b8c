"""Dump the compiled statements (sql, args) of a portal query for 400 recipients/centers as
JSON, made by the code of the current directory (run it from another worktree for an A/B):
  PYTHONPATH=. python /work/wt/compiled3/bench/lab/stop19-compiled3/dump.py URL NAME OUT.json"""
import asyncio
import datetime
import json
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema

LAB = "/work/wt/compiled3/bench/lab/"


async def main() -> None:
    url, name, out = sys.argv[1:4]
    mod = runpy.run_path(LAB + "stop18-compiled2/stmt_cpu.py", run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    stmts = [mod["statement"](compiler, name, rid, center) for rid, center in pairs]
    json.dump([[s, a] for s, a in stmts], open(out, "w"), default=str)

asyncio.run(main())
