"""Object parts are built once and handed out again (api/compiled/objects.py `_BUILT`): a
statement rendered with parts built for earlier requests is the statement rendered afresh, for
any order of operations and principals (another role, another center, another recipient)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.compiled import objects
from api.compiled.compiler import Compiler
from api.compiled.selection import Uncompilable
from api.compiled.statement import Statement
from api.principal import Principal, Role
from api.schema import schema

COMPILER = Compiler(schema, production=False)
RECIPIENT = """id nationalId fullName birthDate sex phone district { id name } registeredAt
    doses { id doseNumber lotNumber administeredOn nextDueOn center { id name }
            vaccine { code } recipient { id fullName } }"""
OPERATIONS = [
    (f"query R($id: ID!) {{ recipient(id: $id) {{ {RECIPIENT} }} }}", {"id": "5"}),
    (f"query R($id: ID!) {{ recipient(id: $id) {{ {RECIPIENT} }} }}", {"id": "6"}),
    ("query C($c: ID!) { doses(filter: {centerId: $c}, first: 50) { edges { node { id "
     "lotNumber recipient { id nationalId fullName phone district { name } } } } } }",
     {"c": "1"}),
    ("query C($c: ID!) { doses(filter: {centerId: $c}, first: 20) { edges { cursor node { id "
     "recipient { nationalId birthDate } center { id } } } pageInfo { endCursor } } }",
     {"c": "2"}),
    (f"{{ recipients(first: 10) {{ edges {{ node {{ {RECIPIENT} }} }} }} }}", {}),
    (f"{{ me {{ role recipient {{ {RECIPIENT} }} }} }}", {}),
    (f"{{ a: recipient(id: \"5\") {{ fullName }} b: recipient(id: \"6\") {{ {RECIPIENT} }} "
     f"d: doses(first: 5) {{ edges {{ node {{ recipient {{ phone }} }} }} }} }}", {}),
]
PRINCIPALS = [
    Principal(Role.ADMIN, "admin-1"), Principal(Role.AUDITOR, "auditor-1"),
    Principal(Role.DISTRICT_OFFICER, "officer-1", district_id=1),
    Principal(Role.DISTRICT_OFFICER, "officer-2", district_id=2),
    Principal(Role.CENTER_STAFF, "nurse-1", center_id=1),
    Principal(Role.CENTER_STAFF, "nurse-2", center_id=2),
    Principal(Role.CENTER_STAFF, "nurse-0"),
    Principal(Role.RECIPIENT, "5"), Principal(Role.RECIPIENT, "6"), Principal(Role.PUBLIC),
]


def _render(operation: int, principal: Principal) -> Any:
    query, variables = OPERATIONS[operation]
    planned = COMPILER.plan(query, None, variables)
    assert planned is not None
    plan, coerced = planned
    assert plan.roots is not None
    try:
        out = Statement(COMPILER.schema, principal, coerced, plan.label, "req").render(plan.roots)
    except Uncompilable as exc:
        return ("uncompilable", str(exc))
    return (out.sql, out.args, out.sites, [e.formatted for e in out.errors],
            [(r.key, r.constant, r.column, r.not_found, r.freeze_sensitive) for r in out.roots])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(OPERATIONS) - 1),
                          st.integers(0, len(PRINCIPALS) - 1)), min_size=1, max_size=12))
def test_a_statement_built_from_reused_parts_is_the_one_built_afresh(
        requests: list[tuple[int, int]]) -> None:
    objects._BUILT.clear()
    for operation, who in requests:
        warm = _render(operation, PRINCIPALS[who])
        kept = dict(objects._BUILT)
        objects._BUILT.clear()
        try:
            assert _render(operation, PRINCIPALS[who]) == warm
        finally:
            objects._BUILT.clear()
            objects._BUILT.update(kept)


def test_parts_are_reused() -> None:
    """The test above compares something: a second request finds parts to reuse."""
    objects._BUILT.clear()
    _render(0, PRINCIPALS[4])
    assert objects._BUILT
    hits = len(objects._BUILT)
    _render(1, PRINCIPALS[5])
    assert len(objects._BUILT) == hits
