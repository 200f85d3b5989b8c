"""Differential: classify with the kept-key shortcut (a row whose live self already holds its
unique values is not probed) finds exactly the unique-key conflicts of probing every row."""

from __future__ import annotations

import asyncio

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.restore.asof import LiveTable
from backup.restore.changes import create_change_table
from backup.restore.classify import classify
from backup.restore.decision import Comparison

TABLE = LiveTable("public", "u", ("id", "a", "b", "c"),
                  {"id": "integer", "a": "integer", "b": "integer", "c": "integer"}, ("id",))
# Plain, NULLs-equal and partial unique indexes: the three kinds classify treats differently.
SCHEMA = """
DROP TABLE IF EXISTS u;
CREATE TABLE u (id integer PRIMARY KEY, a integer, b integer, c integer);
CREATE UNIQUE INDEX u_ab ON u (a, b);
CREATE UNIQUE INDEX u_c ON u (c) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX u_b_when_a ON u (b) WHERE a = 1;
"""
COMPARED = Comparison(("a", "b", "c"))

_value = st.one_of(st.none(), st.integers(1, 3))
_rows = st.dictionaries(st.integers(1, 8), st.tuples(_value, _value, _value), max_size=8)


async def _acts(url: str, live: dict[int, tuple], at_t: dict[int, tuple]) -> dict[bool, list[tuple]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        for row_id, values in live.items():
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO u VALUES ($1, $2, $3, $4)", row_id, *values)
            except asyncpg.UniqueViolationError:
                pass  # the live table can only hold what its unique indexes allow
        acts = {}
        for trust in (True, False):
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE x ON COMMIT DROP AS SELECT * FROM u WITH NO DATA")
                await conn.execute("ALTER TABLE x ADD PRIMARY KEY (id)")
                await conn.executemany("INSERT INTO x VALUES ($1, $2, $3, $4)",
                                       [(row_id, *values) for row_id, values in at_t.items()])
                await create_change_table(conn, "x_after", "x", TABLE.columns, TABLE.primary_key)
                await classify(conn, TABLE, "x", None, COMPARED, overwrite=False, trust_kept_keys=trust)
                acts[trust] = [tuple(r) for r in await conn.fetch(
                    "SELECT id, decided, action, taken_by FROM x_act ORDER BY id")]
        return acts
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(live=_rows, at_t=_rows)
def test_the_kept_key_shortcut_finds_the_same_conflicts(empty_database_url: str, live: dict[int, tuple],
                                                        at_t: dict[int, tuple]) -> None:
    acts = asyncio.run(_acts(empty_database_url, live, at_t))
    assert acts[True] == acts[False]


def test_a_gone_row_whose_unique_values_are_all_null_is_still_probed(empty_database_url: str) -> None:
    """Row 2 at T holds c = NULL; row 1 holds NULL now in a NULLs-equal index, and row 2 is gone:
    re-inserting row 2 would collide, so it is a conflict, with or without the shortcut."""
    acts = asyncio.run(_acts(empty_database_url, {1: (1, 1, None)}, {2: (2, 2, None)}))
    assert acts[True] == acts[False] == [(2, "conflict", "skip", "u_c (c)")]


def test_a_partial_unique_index_is_probed_even_when_the_row_keeps_its_values(empty_database_url: str) -> None:
    """Row 1 keeps b = 1 but sits outside u_b_when_a's predicate, where row 3 holds b = 1 inside
    it: probed as if whole (the rule before the shortcut), so row 1 is listed as a conflict."""
    acts = asyncio.run(_acts(empty_database_url, {1: (2, 1, 1), 3: (1, 1, 3)}, {1: (2, 1, 2)}))
    assert acts[True] == acts[False] == [(1, "conflict", "skip", "u_b_when_a (b)")]
