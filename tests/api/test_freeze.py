"""The privacy freeze: counts only for everyone but admin and recipient-self, at once, everywhere."""

from __future__ import annotations

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
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    other = 1 if cast.district_id != 1 else 2
    elsewhere = await run(pool, seeded_settings, cast.admin,
                          _freeze("DISTRICT", "2099-01-01T00:00:00Z", other))
    assert elsewhere.data == {"setPrivacyFreeze": {"__typename": "PrivacyFreeze", "active": True,
                                                   "districtId": str(other)}}
    assert await owner.fetchval("SELECT district_id FROM privacy_freezes WHERE lifted_at IS NULL") \
        == other
    assert not (await run(pool, seeded_settings, cast.staff, STAFF_READ)).errors
    here = await run(pool, seeded_settings, cast.admin,
                     _freeze("DISTRICT", "2099-01-01T00:00:00Z", cast.district_id))
    assert here.data == {"setPrivacyFreeze": {"__typename": "PrivacyFreeze", "active": True,
                                              "districtId": str(cast.district_id)}}
    assert (await run(pool, seeded_settings, cast.staff, STAFF_READ)).codes() == {
        "recipients": "FORBIDDEN"}
    # Mutations stay open during a freeze, but their results withhold personal fields.
    registered = await run(pool, seeded_settings, cast.staff, f"""mutation {{ registerRecipient(
        input: {{nationalId: "1999000042", fullName: "Frozen Person", birthDate: "1991-02-03",
        sex: "female", districtId: "{cast.district_id}", phone: "+8801711000042"}}) {{
        __typename ... on Recipient {{ id sex nationalId fullName phone birthDate }} }} }}""")
    assert registered.data is not None, registered.errors
    person = registered.data["registerRecipient"]
    assert (person["__typename"], person["sex"]) == ("Recipient", "female")
    assert [person[f] for f in ("nationalId", "fullName", "phone", "birthDate")] == [None] * 4
    assert set(registered.codes().values()) == {"FORBIDDEN"}
    assert all("withheld" in e["message"] for e in registered.errors)
    assert await owner.fetchval("SELECT full_name FROM recipients WHERE id = $1",
                                int(person["id"])) == "Frozen Person", "the write itself happened"
    dose = await run(pool, seeded_settings, cast.staff, f"""mutation {{ recordDose(input: {{
        recipientId: "{person['id']}", vaccine: "BNT162B2", lotNumber: "FRZ-1",
        administeredOn: "2022-01-01"}}) {{ __typename ... on Dose {{ id lotNumber doseNumber
        recipient {{ id fullName nationalId }} }} }} }}""")
    assert dose.data is not None, dose.errors
    recorded = dose.data["recordDose"]
    assert (recorded["__typename"], recorded["lotNumber"], recorded["doseNumber"]) == (
        "Dose", "FRZ-1", 1)
    assert recorded["recipient"] == {"id": person["id"], "fullName": None, "nationalId": None}
    assert await owner.fetchval("SELECT lot_number FROM doses WHERE id = $1",
                                int(recorded["id"])) == "FRZ-1"


async def test_a_freeze_ends_by_itself_when_it_expires(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    # The freeze's clock is the database's now(), shared by every API process; instead of
    # sleeping past `until`, the test moves `until` from just ahead of now() to just behind it.
    freeze_id = await owner.fetchval(
        "INSERT INTO privacy_freezes (district_id, reason, set_by, until) "
        "VALUES (NULL, 'short', 'admin-1', now() + interval '1 hour') RETURNING id")
    assert (await run(pool, seeded_settings, cast.staff, STAFF_READ)).codes() == {
        "recipients": "FORBIDDEN"}
    await owner.execute("UPDATE privacy_freezes SET until = now() - interval '1 millisecond' "
                        "WHERE id = $1", freeze_id)
    thawed = await run(pool, seeded_settings, cast.staff, STAFF_READ)
    assert not thawed.errors and thawed.data is not None
    assert thawed.data["recipients"]["edges"][0]["node"]["fullName"]
    assert await owner.fetchval("SELECT lifted_at FROM privacy_freezes WHERE id = $1", freeze_id) \
        is None, "it ended by itself, nobody lifted it"


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
