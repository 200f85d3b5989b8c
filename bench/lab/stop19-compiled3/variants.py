"""Backend CPU per execution of text variants of one compiled statement, blocks alternating:

  PYTHONPATH=. .venv/bin/python bench/lab/stop19-compiled3/variants.py URL NAME ROUNDS VARIANT...
VARIANT: a name in VARIANTS below (each: role, text transform)."""
import asyncio
import os
import random
import re
import runpy
import sys

import asyncpg

from api.compiled.compiler import Compiler
from api.schema import build_schema

TICK = os.sysconf("SC_CLK_TCK")
BLOCK = 50

SCOPE = re.compile(r"\(d\.center_id = \$5 OR EXISTS \(SELECT 1 FROM recipients sr WHERE sr\.id = "
                   r"d\.recipient_id AND sr\.center_id = \$5\) OR EXISTS \(SELECT 1 FROM doses sd "
                   r"WHERE sd\.recipient_id = d\.recipient_id AND sd\.center_id = \$5\)\) AND ")


def noscope(sql: str) -> str:
    out = SCOPE.sub("$5::bigint IS NOT NULL AND ", sql)
    assert out != sql
    return out


VARIANTS = {
    "api": ("api", lambda s: s),
    "peer": ("owner", "peer"),
    "api0": ("api0", lambda s: s),
    "api3": ("api3", lambda s: s),
    "api4": ("api4", lambda s: s),
    "api5": ("api5", lambda s: s),
    "api6": ("api6", lambda s: s),
    "api2-noscope": ("api2", noscope),
    "owner": ("owner", lambda s: s),
    "api-noscope": ("api", noscope),
    "owner-noscope": ("owner", noscope),
}


def cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main() -> None:
    url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = sys.argv[4:]
    mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
    extra = runpy.run_path("bench/lab/stop19-compiled3/extra_variants.py") \
        if os.path.exists("bench/lab/stop19-compiled3/extra_variants.py") else {}
    VARIANTS.update(extra.get("VARIANTS", {}))
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    base = [mod["statement"](compiler, name, rid, center) for rid, center in pairs]
    conns = {}
    for v in names:
        if v.startswith("file:"):
            role, transform = "api", "file"
        else:
            role, transform = VARIANTS[v]
        c = await asyncpg.connect(url, server_settings={"role": "vaxvault_" + role} if role != "owner" else {})
        if transform == "file":
            import json
            stmts = [(x[0], x[1]) for x in json.load(open(v[5:]))]
        elif transform == "peer":
            peer = open("bench/lab/stop19-compiled3/peer_center.sql").read()
            stmts = [(peer, [a[4]]) for s, a in base]
        elif getattr(transform, "with_args", False):
            stmts = [transform(s, a) for s, a in base]
        else:
            stmts = [(transform(s), a) for s, a in base]
        conns[v] = (c, await c.fetchval("SELECT pg_backend_pid()"), stmts)
    spent = dict.fromkeys(names, 0.0)
    rng = random.Random(1)
    for r in range(rounds + 1):
        order = names if r % 2 else names[::-1]
        for v in order:
            c, pid, stmts = conns[v]
            c0 = cpu(pid)
            for _ in range(BLOCK):
                sql, args = stmts[rng.randrange(len(stmts))]
                await c.fetchrow(sql, *args)
            if r:
                spent[v] += cpu(pid) - c0
    for v in names:
        print(f"{name} {v}: {1000 * spent[v] / (rounds * BLOCK):.3f} ms backend CPU/exec "
              f"(n={rounds * BLOCK}, load {os.getloadavg()[0]:.1f})")

if __name__ == "__main__":
    asyncio.run(main())
