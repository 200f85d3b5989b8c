"""PostgreSQL backend CPU per compiled statement (utime+stime of the backend from /proc), one
connection, N executions rotating over ids, as the API role.

  PYTHONPATH=. .venv/bin/python /work/notes/compiled2-scripts/stmt_cpu.py URL [N] [--generic]
"""
import asyncio
import os
import random
import sys
import time
from typing import Any

import asyncpg

from api.compiled.compiler import Compiler
from api.compiled.statement import Statement
from api.domain.pagination import encode_cursor
from api.principal import Principal, Role
from api.schema import build_schema
from bench.portal import OURS

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def statement(compiler: Compiler, name: str, rid: int, center: int) -> tuple[str, list[Any]]:
    raw: dict[str, Any] = {}
    if name == "recipient_with_doses":
        p = Principal(Role.ADMIN, sub="bench-admin"); raw = {"id": str(rid)}
    elif name == "recipient_with_doses_staff":
        p = Principal(Role.CENTER_STAFF, sub=f"staff-{center}", center_id=center)
        raw = {"id": str(rid)}
    elif name == "center_latest_doses":
        p = Principal(Role.CENTER_STAFF, sub=f"staff-{center}", center_id=center)
        raw = {"centerId": str(center)}
    elif name == "me_recipient":
        p = Principal(Role.RECIPIENT, sub=str(rid))
    else:
        p = Principal(Role.ADMIN, sub="bench-admin")
        raw = {"after": encode_cursor("recipient", [rid])}
    plan, variables = compiler.plan(OURS[name], None, raw)
    r = Statement(compiler.schema, p, variables, plan.label, "cpu").render(plan.roots)
    return r.sql, r.args


async def main() -> None:
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 400
    settings = {"role": "vaxvault_api"}
    if "--generic" in sys.argv:
        settings["plan_cache_mode"] = "force_generic_plan"
    names = [a for a in sys.argv[2:] if not a.isdigit() and not a.startswith("--")] or [
        "recipient_with_doses", "recipient_with_doses_staff", "center_latest_doses",
        "recipients_page_100", "me_recipient"]
    compiler = Compiler(build_schema(production=True), production=True)
    owner = await asyncpg.connect(url)
    pairs = [tuple(r) for r in await owner.fetch(
        "SELECT id, center_id FROM recipients ORDER BY hashint4(id::int) LIMIT 400")]
    await owner.close()
    rng = random.Random(1)
    for name in names:
        conn = await asyncpg.connect(url, server_settings=settings)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        stmts = [statement(compiler, name, rid, center) for rid, center in pairs]
        for sql, args in stmts[:20]:
            await conn.fetchrow(sql, *args)
        c0, w0 = cpu(pid), time.perf_counter()
        for i in range(n):
            sql, args = stmts[rng.randrange(len(stmts))]
            await conn.fetchrow(sql, *args)
        c1, w1 = cpu(pid), time.perf_counter()
        print(f"{name:28s} backend CPU {1000 * (c1 - c0) / n:.3f} ms/stmt, "
              f"wall {1000 * (w1 - w0) / n:.3f} ms/stmt (n={n}, load {os.getloadavg()[0]:.2f})")
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
