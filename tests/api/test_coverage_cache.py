"""The coverage cache: answers stay within their scope and expire."""

from __future__ import annotations

from typing import Any

import asyncpg

from api.domain.coverage import CoverageCache
from api.principal import Role
from api.schema.count_cache import CountCache
from tests.api.client import principal, run
from tests.api.conftest import Cast
from tests.clock import SteppedClock

QUERY = "{ coverage { doses } }"


async def _doses(pool: asyncpg.Pool, settings: Any, who: Any, cache: CoverageCache) -> int:
    result = await run(pool, settings, who, QUERY, coverage_cache=cache)
    assert result.data is not None, result.errors
    rows = result.data["coverage"]
    return rows[0]["doses"] if rows else 0


async def test_cached_answers_never_cross_scopes(pool: asyncpg.Pool, seeded_settings: Any,
                                                 cast: Cast, owner: asyncpg.Connection) -> None:
    cache = CoverageCache(ttl_s=60)
    other_center = await owner.fetchval(
        "SELECT center_id FROM doses WHERE center_id <> $1 GROUP BY center_id "
        "ORDER BY count(*) DESC LIMIT 1", cast.center_id)
    expected = {}
    for who in (cast.staff, principal(Role.CENTER_STAFF, center_id=other_center), cast.officer,
                cast.public, cast.admin):
        expected[who] = await _doses(pool, seeded_settings, who, CoverageCache(ttl_s=0))
    for who, count in expected.items():
        assert await _doses(pool, seeded_settings, who, cache) == count
        assert await _doses(pool, seeded_settings, who, cache) == count
    assert len(set(expected.values())) >= 3


async def test_cached_answers_expire(pool: asyncpg.Pool, seeded_settings: Any, cast: Cast,
                                     owner: asyncpg.Connection) -> None:
    clock = SteppedClock()
    cache = CoverageCache(ttl_s=5, clock=clock)
    before = await _doses(pool, seeded_settings, cast.admin, cache)
    assert before == await owner.fetchval("SELECT count(*) FROM doses")
    await owner.execute("DELETE FROM doses WHERE id = (SELECT max(id) FROM doses)")
    clock.now += 5
    assert await _doses(pool, seeded_settings, cast.admin, cache) == before
    clock.now += 0.001
    assert await _doses(pool, seeded_settings, cast.admin, cache) == before - 1


COUNTS = "query Cov($d: ID) { coverage(filter: {districtId: $d}) { doses } districts { id } }"


async def test_count_only_answers_are_reused_within_their_scope(
        pool: asyncpg.Pool, seeded_settings: Any, cast: Cast, owner: asyncpg.Connection) -> None:
    cache = CountCache(ttl_s=60)
    first = await run(pool, seeded_settings, cast.admin, COUNTS, {"d": None}, count_cache=cache)
    assert first.data is not None and not first.errors
    await owner.execute("DELETE FROM doses WHERE id = (SELECT max(id) FROM doses)")
    again = await run(pool, seeded_settings, cast.admin, COUNTS, {"d": None}, count_cache=cache)
    assert again.data == first.data
    # Another scope, other variables, or a query touching personal data are not reused.
    staff = await run(pool, seeded_settings, cast.staff, COUNTS, {"d": None}, count_cache=cache)
    assert staff.data is not None and staff.data != first.data
    other = await run(pool, seeded_settings, cast.admin, COUNTS, {"d": "1"}, count_cache=cache)
    assert other.data is not None and other.data["coverage"] != first.data["coverage"]
    mixed = "{ coverage { doses } recipients(first: 1) { edges { node { fullName } } } }"
    for _ in range(2):
        read = await run(pool, seeded_settings, cast.admin, mixed, count_cache=cache)
        assert read.data is not None
        assert read.data["coverage"][0]["doses"] == first.data["coverage"][0]["doses"] - 1
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE action = 'read'") == 2
