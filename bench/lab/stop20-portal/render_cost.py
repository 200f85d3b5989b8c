"""Python time per request of the compiled path's steps (no database): plan lookup, render, for
each portal query.  PYTHONPATH=. .venv/bin/python bench/lab/stop20-portal/render_cost.py"""
import runpy
import time

from api.compiled.compiler import Compiler
from api.compiled.statement import Statement
from api.schema import build_schema

mod = runpy.run_path("bench/lab/stop18-compiled2/stmt_cpu.py", run_name="lib")
compiler = Compiler(build_schema(production=True), production=True)
N = 2000
for name in ["recipient_with_doses", "recipient_with_doses_staff", "center_latest_doses",
             "recipients_page_100", "me_recipient"]:
    mod["statement"](compiler, name, 777, 5)  # warm the plan cache
    from bench.portal import OURS
    from api.principal import Principal, Role
    p = Principal(Role.CENTER_STAFF, sub="staff-5", center_id=5)
    raw = {"id": "777"} if "recipient_with" in name else {"centerId": "5"} if "center" in name else {}
    if name == "me_recipient":
        p = Principal(Role.RECIPIENT, sub="777")
    if name in ("recipient_with_doses", "recipients_page_100"):
        p = Principal(Role.ADMIN, sub="bench-admin")
    t0 = time.process_time()
    for _ in range(N):
        plan, variables = compiler.plan(OURS[name], None, raw)
    t1 = time.process_time()
    for _ in range(N):
        r = Statement(compiler.schema, p, variables, plan.label, "cpu").render(plan.roots)
    t2 = time.process_time()
    print(f"{name}: plan {1000 * (t1 - t0) / N:.3f} ms, render {1000 * (t2 - t1) / N:.3f} ms, "
          f"sql {len(r.sql or '')} chars")
