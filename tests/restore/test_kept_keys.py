"""Differential: classify with the kept-key shortcut (a row whose live self already holds its
unique values is not probed) finds exactly the unique-key conflicts of probing every row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.restore.asof import LiveTable
from backup.restore.changes import create_change_table
from backup.restore.classify import classify
from backup.restore.decision import Action, Comparison, decide, history_of
from backup.storage.change import Change, Op

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


async def _acts(url: str, live: dict[int, tuple], at_t: dict[int, tuple], after: list[tuple] = (),
                overwrite: bool = False) -> dict[bool, list[tuple]]:
    """x_act's (id, decided, action, taken_by, first_position, changes, last_position) with the
    kept-key shortcut (True) and probing every row (False). `after`: (position, id, op, values)."""
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
                # Typed like a segment's image (format 2.1): the row after I/U, the key of D.
                await conn.executemany(
                    "INSERT INTO x_after (vv_position, vv_op, id, a, b, c) VALUES ($1, $2, $3, $4, $5, $6)",
                    [(position, op, row_id, *(values if values is not None else (None, None, None)))
                     for position, row_id, op, values in after])
                await classify(conn, TABLE, "x", None, COMPARED, overwrite=overwrite, trust_kept_keys=trust)
                acts[trust] = [tuple(r) for r in await conn.fetch(
                    "SELECT id, decided, action, taken_by, first_position, changes, last_position "
                    "FROM x_act ORDER BY id")]
        return acts
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(live=_rows, at_t=_rows)
def test_the_kept_key_shortcut_finds_the_same_conflicts(empty_database_url: str, live: dict[int, tuple],
                                                        at_t: dict[int, tuple]) -> None:
    acts = asyncio.run(_acts(empty_database_url, live, at_t))
    assert acts[True] == acts[False]


def _image(row_id: int, values: tuple) -> dict:
    return {"id": row_id, "a": values[0], "b": values[1], "c": values[2]}


# After T: ("U"|"I", id, values), ("D", id, None) or ("T", None, None); one that does not apply to
# the table as it then is (an UPDATE of a missing row, ...) is not recorded. Few keys: several
# changes to one key are the common case.
_event = st.one_of(st.tuples(st.sampled_from("UUUI"), st.integers(1, 5), st.tuples(_value, _value, _value)),
                   st.tuples(st.just("D"), st.integers(1, 5), st.none()),
                   st.tuples(st.just("T"), st.none(), st.none()))
# Damage newer than anything shipped: the live row changed (values) or gone (None), unrecorded.
_unrecorded = st.dictionaries(st.integers(1, 8), st.one_of(st.none(), st.tuples(_value, _value, _value)),
                              max_size=3)


def _history(at_t: dict[int, tuple], unrecorded: dict, events: list[tuple]) -> tuple[dict, list[tuple]]:
    """The live table (before its unique indexes refuse rows) and the recorded changes after T."""
    live = {row_id: values for row_id, values in at_t.items() if unrecorded.get(row_id, values) is not None}
    live.update((row_id, values) for row_id, values in unrecorded.items() if values is not None)
    recorded = []
    for op, row_id, values in events:
        if op == "T":
            live.clear()
        elif (op == "I") == (row_id in live):
            continue  # an INSERT of a present key, an UPDATE or DELETE of a missing one
        elif op == "D":
            del live[row_id]
        else:
            live[row_id] = values
        recorded.append((len(recorded) + 1, row_id, op, values))
    return live, recorded


def _expected(at_t: dict[int, tuple], live: dict[int, tuple], after: list[tuple], overwrite: bool) -> dict:
    """decision.decide (the readable rule) for every row at T it does not leave untouched:
    id -> (decided, action, first_position, changes, last_position)."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    changes = [Change(position, position, when, "u", Op(op), None if row_id is None else {"id": row_id}, None,
                      None if values is None else _image(row_id, values))
               for position, row_id, op, values in after]
    expected = {}
    for row_id, values in at_t.items():
        mine = [c for c in changes if c.key is None or c.key["id"] == row_id]
        history = history_of(mine, COMPARED)
        now = _image(row_id, live[row_id]) if row_id in live else None
        decision = decide(_image(row_id, values), history, now, COMPARED)
        if decision.action == Action.UNTOUCHED:
            continue
        restore = Action.REINSERT if now is None else Action.WRITE_BACK
        action = restore if decision.action != Action.CONFLICT or overwrite else "skip"
        expected[row_id] = (decision.action.value, str(action),
                            history.first_position if history else None, history.changes if history else 0,
                            history.last_position if history else None)
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at_t=_rows, unrecorded=_unrecorded, events=st.lists(_event, max_size=10), overwrite=st.booleans())
def test_changes_after_t_are_grouped_by_key_as_the_rule_says(
        empty_database_url: str, at_t: dict[int, tuple], unrecorded: dict, events: list[tuple],
        overwrite: bool) -> None:
    """Updates, deletes, re-inserts of a key and TRUNCATEs after T: classify's grouping (first,
    count, last per key, the first change's image joined by position, a TRUNCATE counted for
    every row) decides each row as decision.decide does; a row whose unique key another live row
    holds is skipped even when overwriting; the kept-key shortcut agrees with probing every row."""
    wanted, after = _history(at_t, unrecorded, events)
    acts = asyncio.run(_acts(empty_database_url, wanted, at_t, after, overwrite))
    assert acts[True] == acts[False]
    expected = _expected(at_t, _live(empty_database_url), after, overwrite)
    got = {row[0]: row[1:] for row in acts[True]}
    assert set(got) == set(expected)
    for row_id, (decided, action, taken_by, *positions) in got.items():
        if taken_by is None:
            assert (decided, action, *positions) == expected[row_id], row_id
        else:  # restorable by the rule, but its unique key is held by another live row
            assert (decided, action) == ("conflict", "skip") and expected[row_id][0] != "conflict"
            assert tuple(positions) == expected[row_id][2:]


def _live(url: str) -> dict[int, tuple]:
    """The live table as its unique indexes let _acts fill it."""
    async def read() -> dict[int, tuple]:
        conn = await asyncpg.connect(url)
        try:
            return {r["id"]: (r["a"], r["b"], r["c"]) for r in await conn.fetch("SELECT * FROM u")}
        finally:
            await conn.close()
    return asyncio.run(read())


def test_a_gone_row_whose_unique_values_are_all_null_is_still_probed(empty_database_url: str) -> None:
    """Row 2 at T holds c = NULL; row 1 holds NULL now in a NULLs-equal index, and row 2 is gone:
    re-inserting row 2 would collide, so it is a conflict, with or without the shortcut."""
    acts = asyncio.run(_acts(empty_database_url, {1: (1, 1, None)}, {2: (2, 2, None)}))
    assert acts[True] == acts[False] == [(2, "conflict", "skip", "u_c (c)", None, 0, None)]


def test_a_partial_unique_index_is_probed_even_when_the_row_keeps_its_values(empty_database_url: str) -> None:
    """Row 1 keeps b = 1 but sits outside u_b_when_a's predicate, where row 3 holds b = 1 inside
    it: probed as if whole (the rule before the shortcut), so row 1 is listed as a conflict."""
    acts = asyncio.run(_acts(empty_database_url, {1: (2, 1, 1), 3: (1, 1, 3)}, {1: (2, 1, 2)}))
    assert acts[True] == acts[False] == [(1, "conflict", "skip", "u_b_when_a (b)", None, 0, None)]
