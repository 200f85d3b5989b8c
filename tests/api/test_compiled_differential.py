"""The compiled read path against the strawberry executor: generated read operations, every role,
with and without a freeze; same data, same errors (message, path, location, code), same audit.

VAXVAULT_COMPILED_EXAMPLES raises the number of generated operations for a soak.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.db.pool import create_pool
from api.domain.pagination import encode_cursor
from api.principal import Role
from tests.api.compiled_paths import COMPILER, compiled, strawberry
from tests.api.conftest import Cast

EXAMPLES = int(os.environ.get("VAXVAULT_COMPILED_EXAMPLES", "25"))

RECIPIENT_SCALARS = ("id", "nationalId", "fullName", "birthDate", "sex", "phone",
                     "registeredAt", "__typename")
DOSE_SCALARS = ("id", "doseNumber", "lotNumber", "administeredOn", "nextDueOn", "__typename")
REFERENCE = {"district": ("id", "name", "division", "__typename"),
             "center": ("id", "name", "districtId", "__typename"),
             "vaccine": ("code", "name", "dosesRequired", "doseIntervalDays", "__typename")}


@dataclass(frozen=True)
class Ids:
    """Values the generator picks from; filled from the seeded database per test."""

    own: int            # the cast's recipient: visible to admin, staff and themselves
    dosed_here: int     # registered elsewhere, dosed at the staff's center
    elsewhere: int      # outside the staff's scope
    center: int
    other_center: int
    vaccine: str
    # A district other than the staff's own holding a resident the staff may read (dosed at
    # their center): a freeze there withholds that resident's personal fields from the staff.
    resident_district: int


@dataclass
class Operation:
    """A query under construction: variable definitions, values and fragments."""

    ids: Ids
    definitions: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)
    roots: set[str] = field(default_factory=set)
    count: int = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def argument(self, draw: Any, value: Any, graphql_type: str) -> str:
        """`value` inline or through a variable."""
        if value is not None and draw(st.booleans()):
            name = self.fresh("v")
            self.definitions.append(f"${name}: {graphql_type}")
            self.variables[name] = value
            return f"${name}"
        return json.dumps(value) if value is not None else "null"


def _wrap(draw: Any, op: Operation, type_name: str, body: str) -> str:
    """A selection as is, in an inline fragment, or in a named fragment."""
    how = draw(st.sampled_from(["plain", "plain", "inline", "named"]))
    if how == "inline":
        return f"... on {type_name} {{ {body} }}"
    if how == "named":
        name = op.fresh("F")
        op.fragments.append(f"fragment {name} on {type_name} {{ {body} }}")
        return f"...{name}"
    return body


def _directive(draw: Any, op: Operation) -> str:
    kind = draw(st.sampled_from(["", "", "", "include", "skip"]))
    if not kind:
        return ""
    if draw(st.booleans()):
        name = op.fresh("b")
        op.definitions.append(f"${name}: Boolean!")
        op.variables[name] = draw(st.booleans())
        return f" @{kind}(if: ${name})"
    return f" @{kind}(if: {json.dumps(draw(st.booleans()))})"


def _fields(draw: Any, op: Operation, type_name: str, depth: int) -> str:
    scalars = RECIPIENT_SCALARS if type_name == "Recipient" else DOSE_SCALARS
    objects = (["district", "doses"] if type_name == "Recipient"
               else ["vaccine", "center", "recipient"])
    if depth <= 0:
        objects = [o for o in objects if o in REFERENCE]
    chosen = draw(st.lists(st.sampled_from([*scalars, *objects]), min_size=1, max_size=6))
    parts = []
    for name in chosen:
        alias = f"{op.fresh('a')}: " if draw(st.booleans()) else ""
        head = f"{alias}{name}{_directive(draw, op)}"
        if name in REFERENCE:
            sub = draw(st.lists(st.sampled_from(REFERENCE[name]), min_size=1, max_size=4))
            parts.append(f"{head} {{ {' '.join(sub)} }}")
        elif name == "doses":
            parts.append(f"{head} {{ {_fields(draw, op, 'Dose', depth - 1)} }}")
        elif name == "recipient":
            parts.append(f"{head} {{ {_fields(draw, op, 'Recipient', depth - 1)} }}")
        else:
            parts.append(head)
    return _wrap(draw, op, type_name, " ".join(parts))


def _connection(draw: Any, op: Operation, node_type: str) -> str:
    parts = []
    for name in draw(st.lists(st.sampled_from(["edges", "edges", "pageInfo", "__typename"]),
                              min_size=1, max_size=3, unique=True)):
        if name == "edges":
            edge = draw(st.lists(st.sampled_from(["node", "node", "cursor", "__typename"]),
                                 min_size=1, max_size=3, unique=True))
            inner = " ".join(f"node {{ {_fields(draw, op, node_type, 1)} }}" if e == "node"
                             else e for e in edge)
            parts.append(f"{name} {{ {inner} }}")
        elif name == "pageInfo":
            info = draw(st.lists(st.sampled_from(["hasNextPage", "endCursor", "__typename"]),
                                 min_size=1, max_size=3, unique=True))
            parts.append(f"pageInfo {{ {' '.join(info)} }}")
        else:
            parts.append(name)
    return " ".join(parts)


def _page_arguments(draw: Any, op: Operation, kind: str) -> list[str]:
    args = []
    first = draw(st.sampled_from([None, 1, 2, 3, 20, 0, 101]))
    if first is not None:
        args.append(f"first: {op.argument(draw, first, 'Int')}")
    cursors = [None, "not-a-cursor", encode_cursor("recipient", [op.ids.own]),
               encode_cursor("dose", ["2025-06-01", 10**9]), encode_cursor("dose", [None, 1]),
               encode_cursor("dose", ["junk", 1]), encode_cursor("recipient", ["x"])]
    after = draw(st.sampled_from(cursors))
    if after is not None:
        args.append(f"after: {op.argument(draw, after, 'String')}")
    return args


def _root(draw: Any, op: Operation) -> str:
    ids = op.ids
    kind = draw(st.sampled_from(["recipient", "recipients", "doses", "me", "__typename"]))
    # Two unaliased roots of one name with different arguments would not validate.
    alias = f"{op.fresh('r')}: " if kind in op.roots or draw(st.booleans()) else ""
    op.roots.add(kind)
    if kind == "recipient":
        value = draw(st.sampled_from([str(ids.own), str(ids.dosed_here), str(ids.elsewhere),
                                      "999999999", "12a"]))
        return (f"{alias}recipient(id: {op.argument(draw, value, 'ID!')}) "
                f"{{ {_fields(draw, op, 'Recipient', 2)} }}")
    if kind == "recipients":
        args = _page_arguments(draw, op, "recipient")
        call = f"recipients({', '.join(args)})" if args else "recipients"
        return f"{alias}{call} {{ {_connection(draw, op, 'Recipient')} }}"
    if kind == "doses":
        args = _page_arguments(draw, op, "dose")
        given_filter = draw(st.dictionaries(st.sampled_from(
            ["centerId", "recipientId", "doseNumber", "administeredFrom", "vaccine"]),
            st.none(), max_size=2))
        values = {"centerId": draw(st.sampled_from([str(ids.center), str(ids.other_center), "c"])),
                  "recipientId": draw(st.sampled_from([str(ids.own), str(ids.elsewhere)])),
                  "doseNumber": draw(st.sampled_from([1, 2, 9])),
                  "administeredFrom": "2020-01-01", "vaccine": ids.vaccine}
        if given_filter:
            inner = ", ".join(f"{k}: {json.dumps(values[k])}" for k in given_filter)
            args.append(f"filter: {{{inner}}}")
        call = f"doses({', '.join(args)})" if args else "doses"
        return f"{alias}{call} {{ {_connection(draw, op, 'Dose')} }}"
    if kind == "me":
        chosen = draw(st.lists(st.sampled_from(
            ["role", "sub", "centerId", "districtId", "__typename", "recipient"]),
            min_size=1, max_size=4, unique=True))
        body = " ".join(f"recipient {{ {_fields(draw, op, 'Recipient', 1)} }}"
                        if c == "recipient" else c for c in chosen)
        return f"{alias}me {{ {_wrap(draw, op, 'Me', body)} }}"
    return f"{alias}__typename"


@st.composite
def operations(draw: Any, ids: Ids) -> tuple[str, dict[str, Any], str | None]:
    op = Operation(ids)
    roots = [_root(draw, op) for _ in range(draw(st.integers(1, 3)))]
    name = draw(st.sampled_from([None, "Portal", "portal_2"]))
    head = "query" + (f" {name}" if name else "")
    if op.definitions:
        head += f"({', '.join(op.definitions)})"
    query = f"{head} {{ {' '.join(roots)} }} " + " ".join(op.fragments)
    return query, op.variables, name


@pytest.fixture
async def reader_pool(seeded_settings: Any) -> AsyncIterator[asyncpg.Pool]:
    """The API's pool with one connection, which both paths and every role take in turn (the
    compiled path releases it without RESET ALL)."""
    pool = await create_pool(replace(seeded_settings, pool_max_size=1))
    yield pool
    await pool.close()


@pytest.fixture
async def ids(owner: asyncpg.Connection, cast: Cast) -> Ids:
    dosed_here = await owner.fetchval(
        "SELECT r.id FROM recipients r JOIN doses d ON d.recipient_id = r.id "
        "WHERE d.center_id = $1 AND r.center_id <> $1 ORDER BY r.id LIMIT 1", cast.center_id)
    elsewhere = await owner.fetchval(
        "SELECT r.id FROM recipients r WHERE r.center_id <> $1 AND NOT EXISTS (SELECT 1 FROM "
        "doses d WHERE d.recipient_id = r.id AND d.center_id = $1) ORDER BY r.id LIMIT 1",
        cast.center_id)
    other_center = await owner.fetchval("SELECT min(id) FROM centers WHERE id <> $1",
                                        cast.center_id)
    vaccine = await owner.fetchval("SELECT vaccine_code FROM doses GROUP BY 1 ORDER BY count(*) "
                                   "DESC LIMIT 1")
    # The seed houses everyone in their center's district: the cast's recipient and those
    # registered elsewhere and dosed here (the staff read them all) move to another district,
    # so its freeze binds them; the center's other registrants stay at home.
    resident_district = await owner.fetchval("SELECT min(id) FROM districts WHERE id <> $1",
                                             cast.district_id)
    await owner.execute(
        "UPDATE recipients r SET district_id = $2 WHERE r.id = $3 OR r.center_id <> $1 AND "
        "EXISTS (SELECT 1 FROM doses d WHERE d.recipient_id = r.id AND d.center_id = $1)",
        cast.center_id, resident_district, cast.recipient_id)
    return Ids(cast.recipient_id, dosed_here, elsewhere, cast.center_id, other_center, vaccine,
               resident_district)


async def _same_everywhere(pool: asyncpg.Pool, reader_pool: asyncpg.Pool,
                           seeded_settings: Any,
                           owner: asyncpg.Connection, cast: Cast, query: str,
                           variables: dict[str, Any], name: str | None) -> None:
    for role in Role:
        principal = cast.of(role)
        expected = await strawberry(reader_pool, seeded_settings, owner, principal, query,
                                    variables, name)
        got = await compiled(reader_pool, owner, principal, query, variables, name)
        assert got is not None, f"not compiled: {query}"
        assert got == expected, (role, query, variables)


# No freeze; a national one; one on the staff's own district; one on a district whose residents
# the staff read from their center elsewhere (policy.resident_frozen); and both district ones.
FREEZES = ("residents' district", "none", "national", "own district", "both districts")


async def _freeze(owner: asyncpg.Connection, freeze: str, cast: Cast, ids: Ids) -> None:
    districts: list[int | None] = {
        "none": [], "national": [None], "own district": [cast.district_id],
        "residents' district": [ids.resident_district],
        "both districts": [cast.district_id, ids.resident_district]}[freeze]
    for district in districts:
        await owner.execute("INSERT INTO privacy_freezes (district_id, reason, set_by, until) "
                            "VALUES ($1, 'differential test', 'admin-1', now() + interval "
                            "'1 hour')", district)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data(), freeze=st.sampled_from(FREEZES))
async def test_generated_reads_answer_the_same_on_both_paths(
        data: st.DataObject, freeze: str, pool: asyncpg.Pool, reader_pool: asyncpg.Pool,
        seeded_settings: Any, owner: asyncpg.Connection, cast: Cast, ids: Ids) -> None:
    query, variables, name = data.draw(operations(ids))
    await _freeze(owner, freeze, cast, ids)
    try:
        await _same_everywhere(pool, reader_pool, seeded_settings, owner, cast, query,
                               variables, name)
    finally:
        await owner.execute("DELETE FROM privacy_freezes")


async def test_pages_follow_cursors_the_same_on_both_paths(
        pool: asyncpg.Pool, reader_pool: asyncpg.Pool, seeded_settings: Any,
        owner: asyncpg.Connection, cast: Cast) -> None:
    """Walk three pages of each connection with the compiled path's own endCursor."""
    for root, node in (("recipients", "id fullName"), ("doses", "id administeredOn")):
        query = (f"query Page($after: String) {{ {root}(first: 7, after: $after) {{ edges {{ "
                 f"cursor node {{ {node} }} }} pageInfo {{ hasNextPage endCursor }} }} }}")
        after = None
        for _ in range(3):
            expected = await strawberry(pool, seeded_settings, owner, cast.admin, query,
                                        {"after": after})
            got = await compiled(reader_pool, owner, cast.admin, query, {"after": after})
            assert got == expected
            assert got.data[root]["pageInfo"]["hasNextPage"]
            after = got.data[root]["pageInfo"]["endCursor"]
            assert after == got.data[root]["edges"][-1]["cursor"]


NOT_COMPILED = [
    'mutation { setPrivacyFreeze(scope: NATIONAL, until: null, reason: "x") { __typename } }',
    "{ __schema { types { name } } }",
    "{ coverage { doses } }",
    "{ me { accessLog { at } } }",
    "{ me { privacyFreeze { reason } } }",
    '{ recipient(id: "1") { accessLog { at } } }',
    '{ recipients(filter: {nationalId: "123"}) { edges { node { id } } } }',
    '{ recipients(filter: {phone: "017"}) { edges { node { id } } } }',
    "{ districts { id } }",
    "{ recipient(id: 1) { nope } }",
    "query A { me { role } } query B { me { sub } }",
]


async def test_what_the_compiler_does_not_cover_goes_to_strawberry(
        reader_pool: asyncpg.Pool, cast: Cast, owner: asyncpg.Connection) -> None:
    for query in NOT_COMPILED:
        assert await compiled(reader_pool, owner, cast.admin, query, {}) is None, query
    # ...and the fallback leaves no trace of the compiled path behind: no audit row.
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_plans_are_cached_per_document_operation_and_directive_values(
        reader_pool: asyncpg.Pool, cast: Cast, owner: asyncpg.Connection) -> None:
    query = "query Q($b: Boolean!) { me { role sub @include(if: $b) } }"
    before = len(COMPILER.plans.items)
    shown = await compiled(reader_pool, owner, cast.staff, query, {"b": True})
    hidden = await compiled(reader_pool, owner, cast.staff, query, {"b": False})
    again = await compiled(reader_pool, owner, cast.admin, query, {"b": True})
    assert shown is not None and hidden is not None and again is not None
    assert shown.data == {"me": {"role": "center_staff", "sub": "nurse-1"}}
    assert hidden.data == {"me": {"role": "center_staff"}}
    assert again.data == {"me": {"role": "admin", "sub": "admin-1"}}
    assert len(COMPILER.plans.items) == before + 2


async def test_a_district_freeze_is_answered_by_the_compiled_path(
        pool: asyncpg.Pool, reader_pool: asyncpg.Pool, seeded_settings: Any,
        owner: asyncpg.Connection, cast: Cast, ids: Ids) -> None:
    """Staff reading a resident of a frozen district elsewhere: the compiled statement itself
    withholds the personal fields (null, FORBIDDEN at each path, nothing audited for them)."""
    resident = ids.dosed_here
    query = ("query Resident($id: ID!) { recipient(id: $id) { id name: fullName nationalId sex "
             "doses { doseNumber recipient { fullName } } } }")
    await _freeze(owner, "residents' district", cast, ids)
    try:
        expected = await strawberry(pool, seeded_settings, owner, cast.staff, query,
                                    {"id": str(resident)}, "Resident")
        got = await compiled(reader_pool, owner, cast.staff, query, {"id": str(resident)},
                             "Resident")
        # The admin is exempt: the same document reveals (and audits) everything.
        admin = await compiled(reader_pool, owner, cast.admin, query, {"id": str(resident)},
                               "Resident")
    finally:
        await owner.execute("DELETE FROM privacy_freezes")
    assert got is not None, "the compiled path stepped aside under a district freeze"
    assert got == expected
    record = got.data["recipient"]
    assert record["id"] == str(resident) and record["sex"] is not None
    assert record["name"] is None and record["nationalId"] is None
    assert record["doses"] and all(d["recipient"]["fullName"] is None for d in record["doses"])
    withheld = f"is withheld: a privacy freeze holds for district {ids.resident_district}"
    paths = {json.loads(path)[-1] for message, path, _, code in got.errors
             if withheld in message and code == "FORBIDDEN"}
    assert paths == {"name", "nationalId", "fullName"}
    assert len(got.errors) == 2 + len(record["doses"])
    assert got.audit == []
    assert admin is not None and not admin.errors and admin.data["recipient"]["name"]
    assert admin.audit and admin.audit[0][7] == ["fullName", "nationalId"]


# Every place a Recipient's personal fields appear, read as every role under every freeze.
RESIDENT_READS = [
    "query R($id: ID!) { recipient(id: $id) { id fullName nationalId birthDate phone sex "
    "doses { id center { id } recipient { id fullName phone } } } }",
    "{ recipients(first: 20) { edges { cursor node { id n: nationalId fullName } } "
    "pageInfo { hasNextPage } } }",
    "{ doses(first: 30) { edges { node { id recipient { fullName birthDate doses { "
    "recipient { nationalId } } } } } } }",
    "{ me { role recipient { id fullName phone doses { recipient { birthDate } } } } }",
]


@pytest.mark.parametrize("freeze", FREEZES)
async def test_every_freeze_answers_resident_reads_the_same_on_both_paths(
        freeze: str, pool: asyncpg.Pool, reader_pool: asyncpg.Pool, seeded_settings: Any,
        owner: asyncpg.Connection,
        cast: Cast, ids: Ids) -> None:
    await _freeze(owner, freeze, cast, ids)
    for query in RESIDENT_READS:
        for recipient in (ids.own, ids.dosed_here):
            variables = {"id": str(recipient)} if "$id" in query else {}
            await _same_everywhere(pool, reader_pool, seeded_settings, owner, cast, query,
                                   variables, None)
