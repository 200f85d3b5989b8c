"""The change-log rows of a decoded transaction: key-changing UPDATEs paired by key, as trigger
capture pairs them.

Pure: decoded row changes in, (change, op, old, new) out. Logical decoding gives a multi-row
UPDATE row by row; trigger capture sees the statement's old and new rows at once and pairs them by
key (an old row with no new row of its key is a D, a new row with no old row an I, both a U).
Row by row, a key-changing UPDATE is a D of the old key and an I of the new one, which is what
trigger capture logs too while no two rows share a key. A table whose primary key is DEFERRABLE
may share one in the middle of a statement: `SET id = CASE id WHEN 1 THEN 2 ELSE 1 END` decodes
as 1->2, 2->1, row by row D1 I2 D2 I1, and restore (the last change per key wins) would lose
row 2. For such tables a run of UPDATEs of one table is paired key by key instead:
- a D of a key that this run gave an I of ANOTHER image: the old row left in the same statement
  (a collision), so the I becomes a U of the old row to the new one (D2 after I2 -> U2);
- an I of a key this run gave a D: a U of the old row to the new one (I1 after D1 -> U1);
- a D of the very image this run's I put there: either that row moved on in a later statement,
  or an identical row left (a shift of rows equal but for their key): the two are the same
  decoded changes, and dropping both is right in either case (the key is as before the run).
A key the run found already changed by a plain UPDATE (or a U) gets later changes appended, in
order. Runs are kept per table: another table's changes in between (a row trigger's INSERT, a
writable CTE) do not end one. A table with a non-deferrable key never shares one, even for a
moment: its changes keep the row-by-row order trigger capture logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from backup.capture.pgoutput import Relation, RowChange

Values = list[str | None] | None
LogRow = tuple[RowChange, str, Values, Values]


def log_rows(changes: Sequence[RowChange], key_of: Callable[[Relation], list[int]],
             deferrable: frozenset[str]) -> list[LogRow]:
    """The log rows of one transaction's `changes` (in commit order). `key_of` gives the positions
    of a relation's primary key columns; `deferrable`: tables whose primary key is DEFERRABLE."""
    out: list[LogRow | None] = []
    # Per table: a row trigger or a writable CTE interleaves other tables' changes with one
    # statement's rows, and must not end that statement's pairing.
    runs: dict[str, _Run] = {}
    for change in changes:
        name = change.relation.name
        old = list(change.old) if change.old is not None else None
        new = list(change.new) if change.new is not None else None
        if change.op != "U" or old is None or new is None:
            runs.pop(name, None)
            out.append((change, change.op, old, new))
            continue
        at = key_of(change.relation)
        before, after = tuple(old[i] for i in at), tuple(new[i] for i in at)
        if name not in deferrable:
            out.extend([(change, "D", old, None), (change, "I", None, new)] if before != after
                       else [(change, "U", old, new)])
            continue
        run = runs.get(name)
        if run is None or run.relation is not change.relation:
            run = runs[name] = _Run(change.relation, out)
        if before == after:
            run.keys[before] = len(out)
            out.append((change, "U", old, new))
        else:
            run.remove(change, before, old)
            run.add(change, after, new)
    return [row for row in out if row is not None]


class _Run:
    """Consecutive UPDATEs of one table (one relation description): per key, the index in `out`
    of the row that holds its latest state in this run."""

    def __init__(self, relation: Relation, out: list[LogRow | None]) -> None:
        self.relation = relation
        self.out = out
        self.keys: dict[tuple[str | None, ...], int] = {}

    def remove(self, change: RowChange, key: tuple[str | None, ...], image: list[str | None]) -> None:
        at = self.keys.get(key)
        row = None if at is None else self.out[at]
        if at is not None and row is not None and row[1] == "I":
            if row[3] == image:  # that row moving on, or an identical row leaving: as before the run
                self.out[at] = None
                del self.keys[key]
            else:  # another row held the key: it left in the same statement
                self.out[at] = (row[0], "U", image, row[3])
            return
        self.keys[key] = len(self.out)
        self.out.append((change, "D", image, None))

    def add(self, change: RowChange, key: tuple[str | None, ...], image: list[str | None]) -> None:
        at = self.keys.get(key)
        row = None if at is None else self.out[at]
        if at is not None and row is not None and row[1] == "D":
            self.out[at] = (row[0], "U", row[2], image)
            return
        self.keys[key] = len(self.out)
        self.out.append((change, "I", None, image))
