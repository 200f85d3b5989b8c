"""Pairing decoded UPDATEs by key (capture/pairing.py) against a model: one multi-row UPDATE
that moves keys (swaps, cycles, shifts) of a table with a DEFERRABLE key, decoded in any row
order, gives a log that restore (the last change per key wins) replays to the table after the
statement; with rows that differ beyond their key it is what trigger capture logs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from backup.capture.pairing import log_rows
from backup.capture.pgoutput import Relation, RowChange

RELATION = Relation(1, "public", "pairs", "f", ("id", "label"), (23, 25), (True, True))
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _key(relation: Relation) -> list[int]:
    return [0]


def _replay(before: dict[str, str | None], log: list[tuple[str, list | None, list | None]]
            ) -> dict[str, str | None]:
    state = dict(before)
    for op, old, new in log:
        if op == "D":
            assert old is not None
            state.pop(old[0], None)
        else:
            assert new is not None
            state[new[0]] = new[1]
    return state


Rows = dict[str, "str | None"]
Statement = list[tuple[str, str, "str | None"]]  # (key before, key after, label after) per row


@st.composite
def statement(draw: st.DrawFn, rows: Rows) -> Statement:
    """One UPDATE of some of `rows`: new keys (unique among the rows after it) and labels, from
    tiny sets, so rows equal but for their key occur."""
    touched = draw(st.lists(st.sampled_from(sorted(rows)), unique=True, min_size=1))
    moving = [k for k in touched if draw(st.booleans())]
    staying = set(rows) - set(moving)
    free = [str(k) for k in range(12) if str(k) not in staying]
    targets = dict(zip(moving, draw(st.permutations(free))[:len(moving)], strict=True))
    return [(k, targets.get(k, k), draw(st.sampled_from([rows[k], None, "a", "b"]))) for k in touched]


def _apply(rows: Rows, update: Statement) -> Rows:
    after = {k: v for k, v in rows.items() if k not in {old for old, _, _ in update}}
    after.update({new: label for _, new, label in update})
    return after


def _trigger_log(rows: Rows, update: Statement) -> list[tuple[str, object, object]]:
    """What trigger capture logs for `update`: its old and new rows paired by key."""
    old_rows = {old: rows[old] for old, _, _ in update}
    new_rows = {new: label for _, new, label in update}
    return [("U" if k in old_rows and k in new_rows else "D" if k in old_rows else "I",
             [k, old_rows[k]] if k in old_rows else None, [k, new_rows[k]] if k in new_rows else None)
            for k in set(old_rows) | set(new_rows)]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_key_moving_updates_decoded_in_any_order_replay_to_the_table_after_them(data: st.DataObject) -> None:
    keys = data.draw(st.lists(st.integers(0, 8), min_size=1, max_size=7, unique=True))
    rows: Rows = {str(k): data.draw(st.sampled_from([None, "a", "b"])) for k in keys}
    changes, expected, state = [], [], rows
    statements = data.draw(st.integers(1, 3))
    for _ in range(statements):  # statements of one transaction, one after another
        update = data.draw(statement(state))
        changes += [RowChange(7, EPOCH, 100, RELATION, "U", (old, state[old]), (new, label))
                    for old, new, label in data.draw(st.permutations(update))]  # any row order
        expected += _trigger_log(state, update)
        state = _apply(state, update)
    log = [(op, old, new) for _, op, old, new in log_rows(changes, _key, frozenset({"pairs"}))]
    assert _replay(rows, log) == state
    if statements == 1 and all(old != new for _, old, new in expected):
        # One statement, no row left as it was (the pairing cannot tell a row that moved on
        # from an identical one leaving, and drops both): what trigger capture logs.
        assert sorted(log, key=repr) == sorted(expected, key=repr)


def test_a_swap_is_two_updates_and_a_table_without_a_deferrable_key_keeps_row_order() -> None:
    swap = [RowChange(7, EPOCH, 100, RELATION, "U", ("1", "x"), ("2", "x")),
            RowChange(7, EPOCH, 100, RELATION, "U", ("2", "y"), ("1", "y"))]
    assert [(op, old, new) for _, op, old, new in log_rows(swap, _key, frozenset({"pairs"}))] == [
        ("U", ["1", "x"], ["1", "y"]), ("U", ["2", "y"], ["2", "x"])]
    # A chain over two statements of a table whose key cannot be shared: as trigger capture logs.
    chain = [RowChange(7, EPOCH, 100, RELATION, "U", ("1", "x"), ("2", "x")),
             RowChange(7, EPOCH, 100, RELATION, "U", ("2", "x"), ("3", "x"))]
    assert [op for _, op, _, _ in log_rows(chain, _key, frozenset())] == ["D", "I", "D", "I"]


def test_another_tables_changes_between_a_swaps_rows_do_not_end_its_pairing() -> None:
    """A row trigger on the swapped table writing another captured table decodes between the
    statement's rows: the swap is still paired (row by row, restore would lose row 2)."""
    other = Relation(2, "public", "swap_log", "f", ("id", "label"), (23, 25), (True, True))
    swap = [RowChange(7, EPOCH, 100, RELATION, "U", ("1", "x"), ("2", "x")),
            RowChange(7, EPOCH, 100, other, "I", None, ("10", "moved 1")),
            RowChange(7, EPOCH, 100, RELATION, "U", ("2", "y"), ("1", "y")),
            RowChange(7, EPOCH, 100, other, "I", None, ("11", "moved 2"))]
    log = log_rows(swap, _key, frozenset({"pairs"}))
    pairs = [(op, old, new) for change, op, old, new in log if change.relation is RELATION]
    assert _replay({"1": "x", "2": "y"}, pairs) == {"1": "y", "2": "x"}
    assert [(op, new) for change, op, _, new in log if change.relation is other] == [
        ("I", ["10", "moved 1"]), ("I", ["11", "moved 2"])]
