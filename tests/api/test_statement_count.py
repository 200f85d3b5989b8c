"""Nested lists cost a constant number of SQL statements, whatever the page size."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.api.client import run
from tests.api.conftest import Cast

LISTING = """query Listing($first: Int) { recipients(first: $first) { edges { node {
  id fullName nationalId district { name } registeredAt
  doses { id doseNumber administeredOn vaccine { code name } center { id name } nextDueOn
          recipient { id phone } } } } } }"""


async def test_listing_recipients_with_doses_is_a_constant_number_of_statements(
        counted_pool: tuple[asyncpg.Pool, list[str]], seeded_settings: Any, cast: Cast) -> None:
    pool, statements = counted_pool
    # asyncpg introspects unfamiliar types once per connection; warm that up first.
    await run(pool, seeded_settings, cast.admin, LISTING, {"first": 1})
    counts = {}
    for first in (5, 100):
        statements.clear()
        result = await run(pool, seeded_settings, cast.admin, LISTING, {"first": first})
        assert not result.errors and result.data is not None
        assert len(result.data["recipients"]["edges"]) == first
        counts[first] = [s.split()[0].upper() for s in statements]
    assert counts[5] == counts[100]
    # BEGIN, principal+freeze, recipients, doses, recipients of doses, the audit INSERT, COMMIT
    assert len(counts[100]) <= 7, counts[100]
    assert counts[100].count("INSERT") == 1
