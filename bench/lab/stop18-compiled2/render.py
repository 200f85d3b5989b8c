"""Print the compiled statement (literals inlined) for a portal query: render.py NAME ID CENTER"""
import sys
from typing import Any
from api.compiled.compiler import Compiler
from api.compiled.statement import Statement
from api.principal import Principal, Role
from api.schema import build_schema
from bench.portal import OURS
from bench.ceiling import _inline

name, rid, center = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
compiler = Compiler(build_schema(production=True), production=True)
raw: dict[str, Any] = {}
if name == "recipient_with_doses":
    p = Principal(Role.ADMIN, sub="bench-admin"); raw = {"id": str(rid)}
elif name == "recipient_with_doses_staff":
    p = Principal(Role.CENTER_STAFF, sub=f"staff-{center}", center_id=center); raw = {"id": str(rid)}
elif name == "center_latest_doses":
    p = Principal(Role.CENTER_STAFF, sub=f"staff-{center}", center_id=center); raw = {"centerId": str(center)}
elif name == "me_recipient":
    p = Principal(Role.RECIPIENT, sub=str(rid))
elif name == "recipients_page_100":
    from api.domain.pagination import encode_cursor
    p = Principal(Role.ADMIN, sub="bench-admin"); raw = {"after": encode_cursor("recipient", [rid])}
plan, variables = compiler.plan(OURS[name], None, raw)
r = Statement(compiler.schema, p, variables, plan.label, "x").render(plan.roots)
print(_inline(r.sql, r.args) + ";")
