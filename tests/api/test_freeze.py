"""The privacy freeze: counts only for everyone but admin and recipient-self, at once, everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from api.db.pool import create_pool
from tests.api.client import run
from tests.api.conftest import Cast

STAFF_READ = "{ recipients(first: 1) { edges { node { fullName } } } coverage { doses } }"


def _freeze(scope: str, until: str | None, district: int | None = None) -> str:
    args = [f"scope: {scope}", 'reason: "misuse of the district portal"']
    if until:
        args.append(f'until: "{until}"')
    if district is not None:
        args.append(f'districtId: "{district}"')
    return (f"mutation {{ setPrivacyFreeze({', '.join(args)}) {{ __typename "
            "... on PrivacyFreeze { active districtId } ... on ValidationFailed { field message } "
            "} }")


async def test_a_national_freeze_leaves_counts_only_on_every_process_until_lifted(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    other_process = await create_pool(seeded_settings)
    try:
        frozen = await run(pool, seeded_settings, cast.admin, _freeze("NATIONAL", "2099-01-01T00:00:00Z"))
        assert frozen.data == {"setPrivacyFreeze": {"__typename": "PrivacyFreeze", "active": True,
                                                    "districtId": None}}
        staff = await run(other_process, seeded_settings, cast.staff, STAFF_READ)
        assert staff.codes() == {"recipients": "FORBIDDEN"}
        assert "privacy freeze" in staff.errors[0]["message"]
        assert staff.data is not None and staff.data["coverage"][0]["doses"] > 0
        auditor = await run(other_process, seeded_settings, cast.auditor,
                            "{ auditLog { edges { node { id } } } me { privacyFreeze { until } } }")
        assert auditor.codes() == {"auditLog": "FORBIDDEN"}
        assert auditor.data is not None and auditor.data["me"]["privacyFreeze"]["until"]
        for exempt in (cast.admin, cast.recipient):
            seen = await run(other_process, seeded_settings, exempt, STAFF_READ.replace(
                "coverage { doses }", ""))
            assert not seen.errors and seen.data is not None
            assert seen.data["recipients"]["edges"][0]["node"]["fullName"]
        lifted = await run(pool, seeded_settings, cast.admin, _freeze("NATIONAL", None))
        assert lifted.data == {"setPrivacyFreeze": {"__typename": "PrivacyFreeze", "active": False,
                                                    "districtId": None}}
        again = await run(other_process, seeded_settings, cast.staff, STAFF_READ)
        assert not again.errors
    finally:
        await other_process.close()
    actions = [r["action"] for r in await owner.fetch(
        "SELECT action FROM audit_log WHERE action = 'freeze' ORDER BY id")]
    assert actions == ["freeze", "freeze"]


async def test_a_district_freeze_covers_that_district_only(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast) -> None:
    other = 1 if cast.district_id != 1 else 2
    await run(pool, seeded_settings, cast.admin, _freeze("DISTRICT", "2099-01-01T00:00:00Z", other))
    assert not (await run(pool, seeded_settings, cast.staff, STAFF_READ)).errors
    await run(pool, seeded_settings, cast.admin,
              _freeze("DISTRICT", "2099-01-01T00:00:00Z", cast.district_id))
    assert (await run(pool, seeded_settings, cast.staff, STAFF_READ)).codes() == {
        "recipients": "FORBIDDEN"}
    # Mutations stay open during a freeze, but their results withhold personal fields.
    dose = await run(pool, seeded_settings, cast.staff, f"""mutation {{ recordDose(input: {{
        recipientId: "{cast.recipient_id}", vaccine: "NOPE", lotNumber: "L",
        administeredOn: "2022-01-01"}}) {{ __typename }} }}""")
    assert dose.data == {"recordDose": {"__typename": "ValidationFailed"}}


async def test_a_freeze_ends_by_itself_when_it_expires(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    await owner.execute("INSERT INTO privacy_freezes (district_id, reason, set_by, until) "
                        "VALUES (NULL, 'short', 'admin-1', now() + interval '1 second')")
    assert (await run(pool, seeded_settings, cast.staff, STAFF_READ)).codes() == {
        "recipients": "FORBIDDEN"}
    await asyncio.sleep(1.2)
    assert not (await run(pool, seeded_settings, cast.staff, STAFF_READ)).errors


async def test_freeze_orders_are_validated(pool: asyncpg.Pool, seeded_settings: Any,
                                           cast: Cast) -> None:
    cases = {
        _freeze("DISTRICT", "2099-01-01T00:00:00Z"): "districtId",
        _freeze("NATIONAL", "2099-01-01T00:00:00Z", 3): "districtId",
        _freeze("DISTRICT", "2099-01-01T00:00:00Z", 99): "districtId",
        _freeze("NATIONAL", "2099-01-01T00:00:00Z").replace("misuse of the district portal", " "):
            "reason",
        _freeze("NATIONAL", "2099-01-01T00:00:00"): "until",
    }
    for mutation, field in cases.items():
        result = await run(pool, seeded_settings, cast.admin, mutation)
        assert result.data is not None, result.errors
        assert result.data["setPrivacyFreeze"]["field"] == field, mutation
