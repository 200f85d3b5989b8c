"""When did the rows vanish? Unusual bursts of deletes, truncates and column updates in changes.

A pure function over Change records: it counts, per table and per *signal* (delete, truncate,
or update of one column, noting how many set it to NULL), the changes in fixed time bins, flags
bins far above that signal's usual rate, merges adjacent flagged bins into windows, and proposes
the T to restore as of: just before the largest transaction of the window (an incident is
usually one bulk statement, and legitimate changes earlier in the same bin must stay history).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from backup.storage.change import Change, Op, Row
from backup.storage.manifest import SegmentManifest, SnapshotManifest

RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True)
class Signal:
    """delete / truncate, or update of `column`."""

    table: str
    kind: str
    column: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.column}" if self.column else self.kind


@dataclass(frozen=True)
class LossWindow:
    table: str
    signal: str
    start: datetime
    end: datetime
    count: int
    set_to_null: int
    transactions: int
    usual_per_bin: float
    example_keys: tuple[Row, ...]
    proposed_as_of: datetime

    def as_json(self) -> dict:
        return {"table": self.table, "signal": self.signal, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "count": self.count, "set_to_null": self.set_to_null,
                "transactions": self.transactions, "usual_per_bin": self.usual_per_bin,
                "example_keys": list(self.example_keys),
                "proposed_as_of": self.proposed_as_of.isoformat()}


@dataclass(frozen=True)
class LossSettings:
    bin: timedelta = timedelta(minutes=1)
    min_count: int = 20  # fewer rows than this in a bin is never an incident
    factor: float = 10.0  # ...and it must be this many times the signal's usual (median) bin
    examples: int = 5
    ignore_columns: frozenset[str] = field(default_factory=lambda: frozenset({"updated_at"}))


def signals_of(change: Change) -> list[tuple[Signal, bool]]:
    """The signals one change raises, each with whether it set the column to NULL."""
    if change.op == Op.DELETE:
        return [(Signal(change.table, "delete"), False)]
    if change.op == Op.TRUNCATE:
        return [(Signal(change.table, "truncate"), False)]
    if change.op == Op.UPDATE and change.old is not None and change.new is not None:
        return [(Signal(change.table, "update", name), change.new.get(name) is None)
                for name in sorted(set(change.old) | set(change.new))
                if change.old.get(name) != change.new.get(name)]
    return []


@dataclass
class _Bin:
    changes: list[tuple[Change, bool]] = field(default_factory=list)


def find_loss(changes: Iterable[Change], table: str | None = None, since: datetime | None = None,
              until: datetime | None = None, settings: LossSettings | None = None) -> list[LossWindow]:
    """Windows of unusual loss, largest first. Changes need not be sorted."""
    settings = settings or LossSettings()
    bins: dict[Signal, dict[int, _Bin]] = defaultdict(dict)
    origin: datetime | None = None
    for change in sorted(changes, key=lambda c: c.position):
        if (table and change.table != table) or (since and change.committed_at < since) \
                or (until and change.committed_at > until):
            continue
        origin = origin or change.committed_at.replace(second=0, microsecond=0)
        index = (change.committed_at - origin) // settings.bin
        for signal, to_null in signals_of(change):
            if signal.column in settings.ignore_columns:
                continue
            bins[signal].setdefault(index, _Bin()).changes.append((change, to_null))
    windows = [window for signal, by_index in bins.items()
               for window in _windows(signal, by_index, settings)]
    return sorted(windows, key=lambda w: (-w.count, w.start))


def _windows(signal: Signal, by_index: dict[int, _Bin], settings: LossSettings) -> list[LossWindow]:
    counts = {index: len(b.changes) for index, b in by_index.items()}
    ordered = sorted(counts.values())
    flagged = []
    for index, count in sorted(counts.items()):
        usual = _median_without(ordered, count)
        if count >= settings.min_count and count >= settings.factor * usual:
            flagged.append((index, usual))
    runs: list[list[tuple[int, float]]] = []
    for index, usual in flagged:
        if runs and runs[-1][-1][0] == index - 1:
            runs[-1].append((index, usual))
        else:
            runs.append([(index, usual)])
    return [_window(signal, [pair for index, _ in run for pair in by_index[index].changes],
                    max(usual for _, usual in run), settings) for run in runs]


def _median_without(ordered: list[int], value: int) -> float:
    """The median of the sorted counts with one occurrence of `value` left out (0 when none remain)."""
    if len(ordered) < 2:
        return 0.0
    at = bisect.bisect_left(ordered, value)
    def nth(i: int) -> int:
        return ordered[i + 1] if i >= at else ordered[i]
    size = len(ordered) - 1
    middle = size // 2
    return float(nth(middle)) if size % 2 else (nth(middle - 1) + nth(middle)) / 2


def _window(signal: Signal, members: list[tuple[Change, bool]], usual: float,
            settings: LossSettings) -> LossWindow:
    per_transaction = Counter(change.txid for change, _ in members)
    largest = per_transaction.most_common(1)[0][0]
    incident_at = min(c.committed_at for c, _ in members if c.txid == largest)
    keys: list[Row] = []
    for change, _ in members:
        if change.key is not None and change.key not in keys and len(keys) < settings.examples:
            keys.append(change.key)
    return LossWindow(
        table=signal.table, signal=signal.label,
        start=min(c.committed_at for c, _ in members), end=max(c.committed_at for c, _ in members),
        count=len(members), set_to_null=sum(1 for _, to_null in members if to_null),
        transactions=len(per_transaction), usual_per_bin=float(usual),
        example_keys=tuple(keys), proposed_as_of=incident_at - RESOLUTION)


def snapshot_differences(snapshots: Sequence[SnapshotManifest], segments: Sequence[SegmentManifest],
                         table: str) -> list[LossWindow]:
    """Where segments are missing between two snapshots, the net rows of `table` gone between them.

    Manifests only (row counts), so it sees deletes and truncates, not nulled columns, and proposes
    the earlier snapshot's cut as T.
    """
    by_start = {s.from_position: s for s in segments}
    windows = []
    for older, newer in pairwise(sorted(snapshots, key=lambda s: s.cut_at)):
        position, hops = older.position, 0
        while position != newer.position and position in by_start and hops <= len(segments):
            position, hops = by_start[position].to_position, hops + 1
        if position == newer.position:
            continue  # the segments cover the interval; find_loss reads them
        before, after = _rows(older, table), _rows(newer, table)
        if before is not None and after is not None and after < before:
            windows.append(LossWindow(
                table=table, signal="rows gone between snapshots (segments missing)",
                start=older.cut_at, end=newer.cut_at, count=before - after, set_to_null=0, transactions=0,
                usual_per_bin=0.0, example_keys=(), proposed_as_of=older.cut_at))
    return windows


def _rows(snapshot: SnapshotManifest, table: str) -> int | None:
    return next((t.rows for t in snapshot.tables if t.name == table), None)
