"""The per-row rule of a restore, as a table of cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from backup.restore.asof import LiveTable
from backup.restore.changes import create_change_table
from backup.restore.classify import classify
from backup.restore.decision import Action, Comparison, decide, history_of
from backup.storage.change import Change, Op

AT_T = {"id": 1, "lot_number": "L1", "administered_on": "2021-10-13",
        "updated_at": "2021-10-13T08:00:00+00:00"}
NULLED = {**AT_T, "administered_on": None, "updated_at": "2021-11-01T03:00:00+00:00"}
NULLED_THEN_LOT = {**NULLED, "lot_number": "L2", "updated_at": "2021-11-01T05:00:00+00:00"}
ALL = Comparison(("id", "lot_number", "administered_on", "updated_at"),
                 frozenset({"updated_at"}))
DATE_ONLY = Comparison(("administered_on",))


def change(position: int, op: Op, old: dict | None, new: dict | None) -> Change:
    return Change(position, position, datetime(2021, 11, 1, tzinfo=UTC), "doses", op, {"id": 1}, old, new)


NULLING = change(10, Op.UPDATE, AT_T, NULLED)
DELETING = change(10, Op.DELETE, AT_T, None)
LOT_FIX = change(11, Op.UPDATE, NULLED, NULLED_THEN_LOT)


CASES = [
    (None, [], {"id": 1}, ALL, Action.UNTOUCHED),                      # born after T
    (AT_T, [], AT_T, ALL, Action.UNTOUCHED),                           # never damaged
    (AT_T, [NULLING], AT_T, ALL, Action.UNTOUCHED),                    # already restored
    (AT_T, [], None, ALL, Action.REINSERT),                            # deleted, not yet shipped
    (AT_T, [], NULLED, ALL, Action.WRITE_BACK),                        # nulled, not yet shipped
    (AT_T, [DELETING], None, ALL, Action.REINSERT),                    # the damage deleted it
    (AT_T, [NULLING], NULLED, ALL, Action.WRITE_BACK),                 # the damage nulled it
    (AT_T, [NULLING, LOT_FIX], NULLED_THEN_LOT, ALL, Action.CONFLICT),  # fixed later: keep it
    (AT_T, [NULLING, LOT_FIX], NULLED_THEN_LOT, DATE_ONLY, Action.WRITE_BACK),  # only the date
    (AT_T, [NULLING, change(12, Op.DELETE, NULLED, None)], None, ALL, Action.CONFLICT),
    (AT_T, [DELETING, change(12, Op.INSERT, None, NULLED)], NULLED, ALL, Action.CONFLICT),
]


@pytest.mark.parametrize(("at_t", "after", "live", "comparison", "expected"), CASES)
def test_decide(at_t: dict | None, after: list[Change], live: dict | None,
                comparison: Comparison, expected: Action) -> None:
    assert decide(at_t, history_of(after, comparison), live, comparison).action == expected


def test_timestamps_compare_as_instants_whatever_the_offset() -> None:
    live = {**NULLED, "updated_at": "2021-11-01T09:00:00+06:00"}
    assert decide(AT_T, history_of([NULLING], ALL), live, ALL).action == Action.WRITE_BACK
    assert ALL.differing(AT_T, NULLED) == ("administered_on", "updated_at")


CASES_TABLE = LiveTable("public", "cases", ("id", "lot_number", "administered_on", "updated_at"),
                        {"id": "integer", "lot_number": "text", "administered_on": "date",
                         "updated_at": "timestamp with time zone"}, ("id",))


def _with_id(row: dict | None, row_id: int) -> dict | None:
    return None if row is None else {**row, "id": row_id}


async def test_the_sql_classification_follows_the_same_rule(database_url: str) -> None:
    """restore_classify.classify (what restores run) against decide (the rule), case by case."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE cases (id integer PRIMARY KEY, lot_number text, "
                           "administered_on date, updated_at timestamptz)")
        for comparison in (ALL, DATE_ONLY):
            cases = [(i, c) for i, c in enumerate(CASES) if c[3] is comparison]
            expected = {i: c[4].value for i, c in cases}
            async with conn.transaction():
                await conn.execute("TRUNCATE cases")
                await conn.execute("CREATE TEMP TABLE x ON COMMIT DROP AS SELECT * FROM cases WITH NO DATA")
                await create_change_table(conn, "x_after", "x", CASES_TABLE.columns, CASES_TABLE.primary_key)
                for i, (at_t, after, live, _, _) in cases:
                    for table, row in (("x", at_t), ("cases", live)):
                        if row is not None:
                            await conn.execute(f"INSERT INTO {table} SELECT * FROM "
                                               f"jsonb_populate_record(NULL::{table}, $1::jsonb)",
                                               json.dumps(_with_id(row, i)))
                    for change in after:
                        # The change table holds the image after the change (the key of a delete).
                        await conn.execute("INSERT INTO x_after SELECT r.*, $2, NULL, $3 "
                                           "FROM jsonb_populate_record(NULL::x, $1::jsonb) r",
                                           json.dumps(_with_id(change.new, i) or {"id": i}),
                                           i * 100 + change.position, change.op.value)
                await classify(conn, CASES_TABLE, "x", None, comparison, overwrite=False)
                decided = dict(await conn.fetch("SELECT id, decided FROM x_act"))
            assert {i: decided.get(i, "untouched") for i, _ in cases} == expected
    finally:
        await conn.close()
