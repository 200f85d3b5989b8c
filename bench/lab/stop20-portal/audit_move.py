"""The audit row's sort/DISTINCT in the read statement (old) or in the batch INSERT (new):
backend CPU per request of the statement plus its share of INSERTs of 6 rows, blocks alternating,
one connection per side, as vaxvault_api:

  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/audit_move.py URL ROUNDS NAME..."""
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
BLOCK = 60
RAW = "'ids', q.ids, 'fields', q.f"
SORTED = ("'ids', ARRAY(SELECT DISTINCT u FROM unnest(q.ids) u ORDER BY u), "
          "'fields', ARRAY(SELECT DISTINCT u COLLATE \"C\" FROM unnest(q.f) u ORDER BY 1)")
INS_SORTED = ("ARRAY(SELECT DISTINCT u FROM unnest(e.ids) u ORDER BY u),\n"
              "    ARRAY(SELECT DISTINCT u COLLATE \"C\" FROM unnest(e.fields) u ORDER BY 1)")
assert RAW.split(", 'fields'")[0] and INS_SORTED in INSERT_SQL
OLD_INSERT = INSERT_SQL.replace(INS_SORTED, "e.ids, e.fields")


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
    sides = {}
    for side in ("old", "new"):
        conn = await asyncpg.connect(url, server_settings={"role": "vaxvault_api"})
        sides[side] = (conn, await conn.fetchval("SELECT pg_backend_pid()"))
    rng = random.Random(1)
    for name in names:
        base = [mod["statement"](compiler, name, rid, c) for rid, c in pairs]
        assert all(RAW in sql for sql, _ in base)
        stmts = {"new": (base, INSERT_SQL),
                 "old": ([(sql.replace(RAW, SORTED), a) for sql, a in base], OLD_INSERT)}
        spent = {"old": 0.0, "new": 0.0}
        for r in range(rounds + 1):
            for side in (("old", "new") if r % 2 else ("new", "old")):
                conn, pid = sides[side]
                texts, insert = stmts[side]
                c0 = cpu(pid)
                audits = []
                for _ in range(BLOCK):
                    sql, args = texts[rng.randrange(len(texts))]
                    audits.append((await conn.fetchrow(sql, *args))["audit"])
                batch = [a for a in audits if a]
                for i in range(0, len(batch), 6):
                    await conn.execute(insert, "[" + ",".join(batch[i:i + 6]) + "]")
                if r:
                    spent[side] += cpu(pid) - c0
        n = rounds * BLOCK
        print(f"{name}: old {1000 * spent['old'] / n:.3f} ms, new {1000 * spent['new'] / n:.3f} ms "
              f"backend CPU per request, statement + audit INSERT (n={n} each, "
              f"load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    asyncio.run(main())
