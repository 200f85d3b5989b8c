"""A district freeze binds who works there (home district from the database) and who lives there."""

from __future__ import annotations

import asyncpg

from api.principal import Role
from api.settings import Settings
from tests.api.client import principal, run
from tests.api.conftest import Cast


def _freeze(district: int, until: str = "2099-01-01T00:00:00Z") -> str:
    return (f'mutation {{ setPrivacyFreeze(scope: DISTRICT, districtId: "{district}", '
            f'reason: "misuse of the district portal", until: "{until}") {{ __typename }} }}')


async def test_an_extra_district_claim_does_not_take_staff_out_of_their_districts_freeze(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    elsewhere = await owner.fetchval("SELECT min(id) FROM districts WHERE id <> $1",
                                     cast.district_id)
    await run(pool, seeded_settings, cast.admin, _freeze(cast.district_id))
    claimed = principal(Role.CENTER_STAFF, center_id=cast.center_id, district_id=elsewhere)
    answer = await run(pool, seeded_settings, claimed,
                       "{ recipients(first: 1) { edges { node { id } } } me { privacyFreeze "
                       "{ districtId } } }")
    assert answer.codes() == {"recipients": "FORBIDDEN"}
    assert f"for district {cast.district_id}" in answer.errors[0]["message"]
    assert answer.data is not None
    assert answer.data["me"]["privacyFreeze"] == {"districtId": str(cast.district_id)}


async def test_a_district_freeze_withholds_its_residents_from_readers_elsewhere(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    # A person registered at the cast's center who lives in another district.
    home = await owner.fetchval("SELECT min(id) FROM districts WHERE id <> $1", cast.district_id)
    rid, national_id = await owner.fetchrow(
        "UPDATE recipients SET district_id = $2 WHERE id = (SELECT min(id) FROM recipients "
        "WHERE center_id = $1) RETURNING id, national_id", cast.center_id, home)
    read = (f'{{ recipient(id: "{rid}") {{ id fullName nationalId }} '
            f'recipients(filter: {{nationalId: "{national_id}"}}) {{ edges {{ node {{ id }} }} }} }}')
    before = await run(pool, seeded_settings, cast.staff, read)
    assert not before.errors and before.data is not None
    assert before.data["recipient"]["fullName"]
    assert before.data["recipients"]["edges"] == [{"node": {"id": str(rid)}}]

    await run(pool, seeded_settings, cast.admin, _freeze(home))
    during = await run(pool, seeded_settings, cast.staff, read)
    assert during.codes() == {"recipient.fullName": "FORBIDDEN",
                              "recipient.nationalId": "FORBIDDEN"}
    assert f"district {home}, where this person lives" in during.errors[0]["message"]
    assert during.data is not None
    # The row stays (vaccination goes on); a lookup by the ID no longer confirms the person.
    assert during.data["recipient"]["id"] == str(rid)
    assert during.data["recipients"]["edges"] == []
    for exempt in (cast.admin, principal(Role.RECIPIENT, sub=str(rid))):
        seen = await run(pool, seeded_settings, exempt,
                         f'{{ recipient(id: "{rid}") {{ fullName nationalId }} }}')
        assert not seen.errors, exempt.role

    await run(pool, seeded_settings, cast.admin, _freeze(home, until="2000-01-01T00:00:00Z"))
    after = await run(pool, seeded_settings, cast.staff, read)
    assert not after.errors
