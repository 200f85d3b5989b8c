"""Backend CPU per compiled statement and per audit row (INSERT of batches of 6, as group commit
does at 16 connections), one connection each, as the API role; variants alternate in blocks:

  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/parts.py URL NAME [ROUNDS]
"""
import asyncio
import os
import random
import runpy
import sys

import asyncpg

from api.compiled.audit_commit import INSERT_SQL
from api.compiled.compiler import Compiler
from api.schema import build_schema

TICK = os.sysconf("SC_CLK_TCK")
BLOCK = 100


def cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    stmts = [mod["statement"](compiler, name, rid, center) for rid, center in pairs]
    conn = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    rng = random.Random(1)
    audits: list[str] = []
    for sql, args in stmts[:20]:
        audits.append((await conn.fetchrow(sql, *args))["audit"])
    spent = {"statement": 0.0, "audit row (batches of 6)": 0.0}
    for _ in range(rounds):
        c0 = cpu(pid)
        for _ in range(BLOCK):
            sql, args = stmts[rng.randrange(len(stmts))]
            row = await conn.fetchrow(sql, *args)
            audits.append(row["audit"])
        spent["statement"] += cpu(pid) - c0
        c0 = cpu(pid)
        batch = [a for a in audits[-BLOCK:] if a]
        for i in range(0, len(batch), 6):
            await conn.execute(INSERT_SQL, "[" + ",".join(batch[i:i + 6]) + "]")
        spent["audit row (batches of 6)"] += cpu(pid) - c0
    for k, v in spent.items():
        print(f"{name} {k}: {1000 * v / (rounds * BLOCK):.3f} ms backend CPU per request "
              f"(n={rounds * BLOCK}, load {os.getloadavg()[0]:.1f})")
    await conn.close()

asyncio.run(main())
