"""Migration 0033 A/B: backend CPU per compiled statement with vaxvault_center_dosed as a
security barrier or not, toggled (ALTER VIEW, as the owner) before each block of 50:

  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/barrier.py URL ROUNDS NAME...
Leaves the view as a barrier. Each block's first execution re-plans (the ALTER invalidates)."""
import asyncio
import os
import random
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema

TICK = os.sysconf("SC_CLK_TCK")
BLOCK = 50
FLIP = os.environ.get("FLIP") == "1"  # which side runs first in each pair


def cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main() -> None:
    url, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    api = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
    pid = await api.fetchval("SELECT pg_backend_pid()")
    rng = random.Random(1)
    for name in names:
        stmts = [mod["statement"](compiler, name, rid, center) for rid, center in pairs]
        spent = {True: 0.0, False: 0.0}
        for r in range(2 * rounds + 2):
            barrier = bool(r % 2) != FLIP
            await owner.execute(f"ALTER VIEW vaxvault_center_dosed SET (security_barrier = {barrier})")
            c0 = cpu(pid)
            for _ in range(BLOCK):
                sql, args = stmts[rng.randrange(len(stmts))]
                await api.fetchrow(sql, *args)
            if r >= 2:
                spent[barrier] += cpu(pid) - c0
        print(f"{name}: barrier {1000 * spent[True] / (rounds * BLOCK):.3f} ms, "
              f"none {1000 * spent[False] / (rounds * BLOCK):.3f} ms backend CPU/exec "
              f"(n={rounds * BLOCK} each, load {os.getloadavg()[0]:.1f})")
    await owner.execute("ALTER VIEW vaxvault_center_dosed SET (security_barrier = true)")


if __name__ == "__main__":
    asyncio.run(main())
