"""Coverage for counts-only roles: no cell of 1..k-1, the old single-day questions refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import asyncpg
import pytest

from api.domain.coverage import CoverageCache
from api.settings import Settings
from tests.api.client import run
from tests.api.conftest import Cast

ROW = "district { id } center { id } vaccine { code } doseNumber doses recipients suppressed"


@pytest.fixture
def k10(seeded_settings: Settings) -> Settings:
    return replace(seeded_settings, min_cell=10)


def _coverage(group_by: str, filters: str = "") -> str:
    return f"{{ coverage(groupBy: [{group_by}], filter: {{{filters}}}) {{ {ROW} }} }}"


def _assert_safe(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["suppressed"]:
            assert row["doses"] is None and row["recipients"] is None, row
        else:
            assert row["recipients"] >= 10 and row["doses"] >= row["recipients"], row


async def test_the_single_day_question_from_the_issue_is_refused_for_counts_only_roles(
        pool: asyncpg.Pool, k10: Settings, cast: Cast, owner: asyncpg.Connection) -> None:
    day, vaccine, dose_number = await owner.fetchrow(
        "SELECT administered_on, vaccine_code, dose_number FROM doses "
        "WHERE administered_on IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) = 1 LIMIT 1")
    asked = _coverage("DISTRICT", f'administeredFrom: "{day}", administeredTo: "{day}", '
                                  f'vaccine: "{vaccine}", doseNumber: {dose_number}')
    for who in (cast.public, cast.auditor, cast.officer):
        answer = await run(pool, k10, who, asked)
        assert answer.codes() == {"coverage": "FORBIDDEN"}, who.role
        assert "whole calendar month" in answer.errors[0]["message"]
    exact = await run(pool, k10, cast.admin, asked)
    assert not exact.errors and exact.data is not None
    assert [r["doses"] for r in exact.data["coverage"]] == [1]


async def test_officers_and_auditors_may_not_cross_breakdowns(
        pool: asyncpg.Pool, k10: Settings, cast: Cast) -> None:
    for who in (cast.auditor, cast.officer):
        for group_by in ("CENTER, DAY, VACCINE, DOSE_NUMBER", "CENTER, VACCINE",
                         "DAY"):
            answer = await run(pool, k10, who, _coverage(group_by))
            assert answer.codes() == {"coverage": "FORBIDDEN"}, (who.role, group_by)
        crossed = await run(pool, k10, who, _coverage("VACCINE", "doseNumber: 1"))
        assert crossed.codes() == {"coverage": "FORBIDDEN"}


async def test_no_allowed_question_shows_a_small_count(
        pool: asyncpg.Pool, k10: Settings, cast: Cast, owner: asyncpg.Connection) -> None:
    month = await owner.fetchval("SELECT date_trunc('month', min(administered_on))::date "
                                 "FROM doses")
    last = date(month.year + month.month // 12, month.month % 12 + 1, 1).toordinal() - 1
    month_filter = f'administeredFrom: "{month}", administeredTo: "{date.fromordinal(last)}"'
    questions = [(g, f) for g in ("", "DISTRICT")
                 for f in ("", month_filter, 'vaccine: "AZ"', "doseNumber: 2",
                           f'districtId: "{cast.district_id}"')]
    questions += [(f"DISTRICT, {b}", "") for b in ("CENTER", "VACCINE", "DOSE_NUMBER")]
    questions += [(b, "") for b in ("CENTER", "VACCINE", "DOSE_NUMBER")]
    suppressed = shown = 0
    # One release for all the questions, as in a serving process (the cache holds it).
    cache = CoverageCache(ttl_s=600)
    for who in (cast.public, cast.auditor, cast.officer):
        for group_by, filters in questions:
            answer = await run(pool, k10, who, _coverage(group_by, filters), coverage_cache=cache)
            if who is cast.public and group_by not in ("", "DISTRICT"):
                assert answer.codes() == {"coverage": "FORBIDDEN"}
                continue
            assert not answer.errors, (who.role, group_by, filters, answer.errors)
            assert answer.data is not None
            _assert_safe(answer.data["coverage"])
            suppressed += sum(r["suppressed"] for r in answer.data["coverage"])
            shown += sum(not r["suppressed"] for r in answer.data["coverage"])
    # The seed is small: both kinds occur, so the assertions above bit on each.
    assert suppressed > 0 and shown > 0


async def test_admin_and_own_center_staff_see_exact_counts_until_a_freeze(
        pool: asyncpg.Pool, k10: Settings, cast: Cast, owner: asyncpg.Connection) -> None:
    exact = await owner.fetchval("SELECT count(*) FROM doses WHERE center_id = $1",
                                 cast.center_id)
    staff = await run(pool, k10, cast.staff, "{ coverage { doses suppressed } }")
    assert staff.data == {"coverage": [{"doses": exact, "suppressed": False}]}
    by_vaccine = await run(pool, k10, cast.staff, _coverage("VACCINE"))
    assert not by_vaccine.errors
    admin = await run(pool, k10, cast.admin, _coverage("DISTRICT, VACCINE"))
    assert admin.data is not None
    assert any(0 < r["recipients"] < 10 for r in admin.data["coverage"])
    assert not any(r["suppressed"] for r in admin.data["coverage"])
    await run(pool, k10, cast.admin, 'mutation { setPrivacyFreeze(scope: NATIONAL, reason: '
                                     '"misuse", until: "2099-01-01T00:00:00Z") { __typename } }')
    frozen = await run(pool, k10, cast.staff, _coverage("VACCINE"))
    assert frozen.codes() == {"coverage": "FORBIDDEN"}
    total = await run(pool, k10, cast.staff, "{ coverage { doses recipients suppressed } }")
    assert total.data is not None
    _assert_safe(total.data["coverage"])
