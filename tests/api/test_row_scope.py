"""Row scope per role, through the API, against sets computed from the database directly."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from api.domain.conditions import Conditions
from api.domain.scope import (
    center_doses_in_scope,
    doses_follow_recipients,
    doses_in_scope,
    recipients_in_scope,
)
from api.principal import Principal, Role
from tests.api.client import run
from tests.api.conftest import Cast

CENTER_RECIPIENTS = """
SELECT id FROM recipients r WHERE r.center_id = $1
   OR EXISTS (SELECT 1 FROM doses d WHERE d.recipient_id = r.id AND d.center_id = $1)
"""


async def _all_ids(pool: asyncpg.Pool, settings: Any, principal: Any, root: str) -> list[int]:
    ids: list[int] = []
    after = None
    while True:
        result = await run(pool, settings, principal,
                           f"query($after: String) {{ {root}(first: 100, after: $after) {{ "
                           "edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                           {"after": after})
        assert not result.errors, result.errors
        assert result.data is not None
        page = result.data[root]
        ids += [int(edge["node"]["id"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


async def test_center_staff_see_exactly_recipients_registered_or_dosed_at_their_center(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    expected = {row["id"] for row in await owner.fetch(CENTER_RECIPIENTS, cast.center_id)}
    dosed_only = await owner.fetchval(
        "SELECT count(*) FROM recipients r WHERE r.center_id <> $1 AND EXISTS (SELECT 1 FROM "
        "doses d WHERE d.recipient_id = r.id AND d.center_id = $1)", cast.center_id)
    assert dosed_only > 0, "the seed should hold people dosed at a center they did not register for"
    ids = await _all_ids(pool, seeded_settings, cast.staff, "recipients")
    assert ids == sorted(expected)
    expected_doses = {row["id"] for row in await owner.fetch(
        "SELECT id FROM doses WHERE recipient_id = ANY($1)", list(expected))}
    assert set(await _all_ids(pool, seeded_settings, cast.staff, "doses")) == expected_doses


async def test_admin_pages_through_everyone_once(pool: asyncpg.Pool, seeded_settings: Any,
                                                 cast: Cast, owner: asyncpg.Connection) -> None:
    ids = await _all_ids(pool, seeded_settings, cast.admin, "recipients")
    assert ids == [row["id"] for row in await owner.fetch("SELECT id FROM recipients ORDER BY id")]
    doses = await _all_ids(pool, seeded_settings, cast.admin, "doses")
    assert sorted(doses) == [r["id"] for r in await owner.fetch("SELECT id FROM doses ORDER BY id")]
    assert len(set(doses)) == len(doses)


async def test_a_recipient_sees_exactly_themselves(pool: asyncpg.Pool, seeded_settings: Any,
                                                   cast: Cast, owner: asyncpg.Connection) -> None:
    assert await _all_ids(pool, seeded_settings, cast.recipient, "recipients") == [cast.recipient_id]
    own = {r["id"] for r in await owner.fetch("SELECT id FROM doses WHERE recipient_id = $1",
                                              cast.recipient_id)}
    assert set(await _all_ids(pool, seeded_settings, cast.recipient, "doses")) == own
    other = cast.recipient_id + 1
    result = await run(pool, seeded_settings, cast.recipient,
                       f'{{ recipient(id: "{other}") {{ id fullName }} }}')
    assert result.data == {"recipient": None}
    assert result.codes() == {"recipient": "NOT_FOUND"}


async def test_out_of_scope_and_missing_rows_answer_the_same_not_found(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    outside = await owner.fetchval(f"SELECT id FROM recipients WHERE id NOT IN ({CENTER_RECIPIENTS})"
                                   " ORDER BY id LIMIT 1", cast.center_id)
    seen = await run(pool, seeded_settings, cast.staff, f'{{ recipient(id: "{outside}") {{ id }} }}')
    missing = await run(pool, seeded_settings, cast.staff, '{ recipient(id: "999999") { id } }')
    for result in (seen, missing):
        assert result.data == {"recipient": None}
        assert result.codes() == {"recipient": "NOT_FOUND"}
    admin = await run(pool, seeded_settings, cast.admin, f'{{ recipient(id: "{outside}") {{ id }} }}')
    assert admin.data == {"recipient": {"id": str(outside)}}


async def test_district_officer_coverage_is_their_district_only(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    doses, people = await owner.fetchrow(
        "SELECT count(*), count(DISTINCT d.recipient_id) FROM doses d JOIN centers c "
        "ON c.id = d.center_id WHERE c.district_id = $1", cast.district_id)
    result = await run(pool, seeded_settings, cast.officer,
                       "{ coverage(groupBy: [DISTRICT]) { district { id } doses recipients } }")
    assert result.data == {"coverage": [{"district": {"id": str(cast.district_id)},
                                         "doses": doses, "recipients": people}]}
    other = 1 if cast.district_id != 1 else 2
    result = await run(pool, seeded_settings, cast.officer,
                       f'{{ coverage(filter: {{districtId: "{other}"}}) {{ doses }} }}')
    assert result.data == {"coverage": []}


async def test_center_staff_coverage_is_their_center_and_admin_sees_all(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    at_center = await owner.fetchval("SELECT count(*) FROM doses WHERE center_id = $1",
                                     cast.center_id)
    staff = await run(pool, seeded_settings, cast.staff, "{ coverage { doses } }")
    assert staff.data == {"coverage": [{"doses": at_center}]}
    total = await owner.fetchval("SELECT count(*) FROM doses")
    by_number = await run(pool, seeded_settings, cast.admin,
                          "{ coverage(groupBy: [DOSE_NUMBER, VACCINE]) { doseNumber vaccine { code }"
                          " doses } }")
    assert by_number.data is not None
    assert sum(row["doses"] for row in by_number.data["coverage"]) == total


async def test_public_sees_national_and_district_totals_only(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    total = await owner.fetchval("SELECT count(*) FROM doses")
    national = await run(pool, seeded_settings, cast.public, "{ coverage { doses } }")
    assert national.data == {"coverage": [{"doses": total}]}
    per_district = await run(pool, seeded_settings, cast.public,
                             "{ coverage(groupBy: [DISTRICT]) { district { name } doses } }")
    assert per_district.data is not None
    assert sum(r["doses"] for r in per_district.data["coverage"]) == total
    for query in ("{ coverage(groupBy: [CENTER]) { doses } }",
                  '{ coverage(filter: {centerId: "1"}) { doses } }'):
        refused = await run(pool, seeded_settings, cast.public, query)
        assert refused.codes() == {"coverage": "FORBIDDEN"}


async def test_recall_list_holds_due_doses_not_yet_given(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    expected = {row["id"] for row in await owner.fetch(
        "SELECT d.id FROM doses d WHERE d.next_due_on BETWEEN '2021-09-01' AND '2021-10-31' AND "
        "NOT EXISTS (SELECT 1 FROM doses n WHERE n.recipient_id = d.recipient_id AND "
        "n.dose_number = d.dose_number + 1)")}
    assert expected, "the seed should leave some series unfinished"
    result = await run(pool, seeded_settings, cast.admin,
                       '{ dosesDue(from: "2021-09-01", to: "2021-10-31") { doseNumber dueOn '
                       "lastDose { id doseNumber } recipient { id phone } } }")
    assert result.data is not None and not result.errors
    due = result.data["dosesDue"]
    assert {int(d["lastDose"]["id"]) for d in due} == expected
    assert all(d["doseNumber"] == d["lastDose"]["doseNumber"] + 1 for d in due)
    too_long = await run(pool, seeded_settings, cast.admin,
                         '{ dosesDue(from: "2021-01-01", to: "2021-12-31") { dueOn } }')
    assert too_long.codes() == {"dosesDue": "BAD_USER_INPUT"}


async def _scoped_ids(owner: asyncpg.Connection, table: str, who: Principal) -> set[int]:
    """What the scope conditions alone let through (as the owner: no RLS)."""
    where = Conditions()
    (recipients_in_scope if table == "recipients" else doses_in_scope)(where, who, "x")
    return {r["id"] for r in await owner.fetch(f"SELECT x.id FROM {table} x {where.where()}",
                                               *where.args)}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
async def test_the_scope_shortcuts_are_implied_by_the_scope_conditions(
        owner: asyncpg.Connection, cast: Cast, role: Role) -> None:
    """Statements leave the doses condition out where doses_follow_recipients or
    center_doses_in_scope say it adds nothing; each must hold for the conditions themselves."""
    who = cast.of(role)
    doses = await _scoped_ids(owner, "doses", who)
    if doses_follow_recipients(who):
        recipients = await _scoped_ids(owner, "recipients", who)
        of_them = {r["id"] for r in await owner.fetch(
            "SELECT id FROM doses WHERE recipient_id = ANY($1)", list(recipients))}
        assert doses == of_them
    other = await owner.fetchval("SELECT min(center_id) FROM doses WHERE center_id <> $1",
                                 cast.center_id)
    for center in (cast.center_id, other):
        given_there = {r["id"] for r in await owner.fetch(
            "SELECT id FROM doses WHERE center_id = $1", center)}
        if center_doses_in_scope(who, center):
            assert given_there <= doses
    # Not vacuous: the roles the compiled reads serve take the shortcuts.
    assert doses_follow_recipients(who) is (role in (Role.ADMIN, Role.CENTER_STAFF, Role.RECIPIENT))
    assert center_doses_in_scope(who, cast.center_id) is (role in (Role.ADMIN, Role.CENTER_STAFF))
    assert center_doses_in_scope(who, other) is (role is Role.ADMIN)
