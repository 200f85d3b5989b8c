"""The ceiling: the statements the compiled path sends for a portal query, run by pgbench at the
same concurrency: the read (principal, freezes, read, the audit row built) and that audit row's
INSERT, each committed by itself. The server commits the audit rows of concurrent reads
together (api/compiled/audit_commit.py); here every request pays its own commit, so this
ceiling is a floor of what the database can serve."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from datetime import date
from typing import Any

from api.compiled.audit_commit import INSERT_SQL
from api.compiled.compiler import Compiler
from api.compiled.statement import Statement
from api.db.pool import API_ROLE
from api.db.session import principal_args
from api.principal import Principal, Role
from api.schema import build_schema
from bench.portal import OURS

# Stand-ins rendered into the SQL, then swapped for pgbench's random variables.
_ID, _CENTER = 987654321, 87654321
CEILING_QUERIES = ("recipient_with_doses", "center_latest_doses")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def _inline(sql: str, args: list[Any]) -> str:
    return re.sub(r"\$(\d+)", lambda m: _literal(args[int(m.group(1)) - 1]), sql)


def script(name: str, recipients: int, centers: int) -> str:
    """A pgbench script for `name` with the statements our compiled path sends."""
    compiler = Compiler(build_schema(production=True), production=True)
    if name == "recipient_with_doses":
        principal = Principal(Role.ADMIN, sub="bench-admin")
        raw: dict[str, Any] = {"id": str(_ID)}
    else:
        principal = Principal(Role.CENTER_STAFF, sub="bench-staff", center_id=_CENTER)
        raw = {"centerId": str(_CENTER)}
    planned = compiler.plan(OURS[name], None, raw)
    assert planned is not None, name
    plan, variables = planned
    rendered = Statement(compiler.schema, principal, variables, plan.label,
                         "pgbench").render(plan.roots or ())
    assert rendered.sql is not None
    audit = _audit_insert(principal, plan.label, "pgbench", name)
    body = f"{_inline(rendered.sql, rendered.args)};\n{audit};\n"
    # The id first: it contains the center's digits.
    body = body.replace(f"'{_ID}'", "(:id)::text").replace(str(_ID), ":id")
    body = body.replace(f"'{_CENTER}'", "(:c)::text").replace(str(_CENTER), ":c")
    # pgbench reads `:MI` as a variable; a quoted colon formats the same.
    body = body.replace("HH24:MI:SS", 'HH24":"MI":"SS')
    return f"\\set id random(1, {recipients})\n\\set c random(1, {centers})\n{body}"


def _audit_insert(principal: Principal, operation: str | None, request_id: str,
                  name: str) -> str:
    """The INSERT of audit_commit for the one row this read leaves (recipient :id, or 50 dose
    recipients around :id for the center's latest doses)."""
    ids = "ARRAY[:id]::bigint[]" if name == "recipient_with_doses" else \
        "ARRAY(SELECT generate_series((:id)::bigint, (:id)::bigint + 49))"
    fields = "ARRAY['birthDate', 'fullName', 'nationalId', 'phone']" \
        if name == "recipient_with_doses" else "ARRAY['fullName', 'nationalId']"
    role, sub, _, _ = principal_args(principal)
    row = (f"json_build_array(json_build_object('set_role', {_literal(role)}, 'set_sub', "
           f"{_literal(sub)}, 'sub', {_literal(principal.sub)}, 'role', {_literal(role)}, "
           f"'center', {_literal(principal.center_id)}::int, 'district', NULL, 'operation', "
           f"{_literal(operation)}, 'request', {_literal(request_id)}, 'ids', {ids}, "
           f"'fields', {fields}))")
    return INSERT_SQL.replace("$1::json", row)


def pgbench(bindir: str, url: str, text: str, seconds: int, clients: int) -> float:
    """Transactions per second of `text` over `clients` connections as the API role."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(text)
    try:
        done = subprocess.run(
            [os.path.join(bindir, "pgbench"), "-n", "-M", "prepared", "-c", str(clients),
             "-j", "2", "-T", str(seconds), "-f", handle.name, url],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PGOPTIONS": f"-c role={API_ROLE}"})
    finally:
        os.unlink(handle.name)
    match = re.search(r"tps = ([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps: {done.stdout[-300:]} {done.stderr[-300:]}")
    return float(match.group(1))
