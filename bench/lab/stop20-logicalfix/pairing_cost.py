"""CPU per decoded change of the drain's Python step: the old row-by-row split (_ops of 83f9bfe)
against capture/pairing.log_rows, on 200k synthetic changes (inserts, plain updates, key moves).
Run: PYTHONPATH=. .venv/bin/python bench/lab/stop20-logicalfix/pairing_cost.py"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from backup.capture.pairing import log_rows
from backup.capture.pgoutput import Relation, RowChange

REL = Relation(1, "public", "doses", "f", tuple(f"c{i}" for i in range(8)), (23,) * 8, (True,) * 8)
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _changes(n: int) -> list[RowChange]:
    out = []
    for i in range(n):
        row = tuple(str(i * 10 + j) for j in range(8))
        kind = i % 4
        if kind == 0:
            out.append(RowChange(i, AT, i, REL, "I", None, row))
        elif kind in (1, 2):
            out.append(RowChange(i, AT, i, REL, "U", row, (row[0], *row[1:7], "x")))
        else:
            out.append(RowChange(i, AT, i, REL, "U", row, ("-" + row[0], *row[1:])))
    return out


def _old(change: RowChange, key: list[str]) -> list[tuple[str, object, object]]:
    old = list(change.old) if change.old is not None else None
    new = list(change.new) if change.new is not None else None
    if change.op == "U" and old is not None and new is not None:
        at = [change.relation.columns.index(c) for c in key]
        if any(old[i] != new[i] for i in at):
            return [("D", old, None), ("I", None, new)]
    return [(change.op, old, new)]


def main() -> None:
    changes = _changes(200_000)
    batches = [changes[i:i + 5] for i in range(0, len(changes), 5)]  # 5 changes per transaction
    for round_ in range(3):
        started = time.process_time()
        rows = sum(len(_old(c, ["c0"])) for c in changes)
        old = time.process_time() - started
        started = time.process_time()
        new_rows = sum(len(log_rows(b, lambda r: [r.columns.index("c0")], frozenset())) for b in batches)
        plain = time.process_time() - started
        started = time.process_time()
        paired = sum(len(log_rows(b, lambda r: [r.columns.index("c0")], frozenset({"doses"}))) for b in batches)
        deferrable = time.process_time() - started
        assert rows == new_rows == paired
        n = len(changes) / 1e6
        print(f"round {round_}: old {old / n:.2f} us/change, log_rows {plain / n:.2f}, "
              f"log_rows deferrable key {deferrable / n:.2f}")


if __name__ == "__main__":
    main()
