"""Finding loss as an admin operation: the console's chart over time, and the windows that
`vaxvault restore find-loss` reports, from the shipped segments of one table and the live change
log (damage found before the next incremental ships it is the common case at 2 a.m.).

Reading segments is blocking storage I/O, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.domain.errors import BadUserInput
from api.domain.restore_admin import RestoreFailed, RestoreNotConfigured, Source, explain, source
from api.settings import Settings
from backup.errors import BackupError
from backup.restore.errors import RestoreError
from backup.restore.find_loss import (
    LossSettings,
    LossWindow,
    find_loss,
    signals_of,
    snapshot_differences,
)
from backup.restore.source import live_changes, merged, shipped_changes
from backup.storage.change import Change
from backup.storage.manifest import SegmentManifest
from backup.storage.reader import list_segments, list_snapshots

# A chart with more bars than this is unreadable; ask for a wider bin instead.
MAX_BUCKETS = 2000


@dataclass(frozen=True)
class Bucket:
    """How many changes of one signal (delete, truncate, update COLUMN) fell in [start, start+bin)."""

    start: datetime
    signal: str
    count: int
    set_to_null: int


@dataclass(frozen=True)
class LossReport:
    table: str
    bin: timedelta
    buckets: tuple[Bucket, ...]
    windows: tuple[LossWindow, ...]
    unshipped: int  # changes read from the live log that no segment holds yet
    warnings: tuple[str, ...]


def buckets(changes: list[Change], bin: timedelta,
            ignore_columns: frozenset[str] = LossSettings().ignore_columns) -> list[Bucket]:
    """Changes counted per time bin and signal (bins aligned to whole multiples of `bin` since the
    epoch, so two calls agree), in time order; bins with no change are left out."""
    epoch = datetime(1970, 1, 1, tzinfo=changes[0].committed_at.tzinfo) if changes else None
    counts: Counter[tuple[datetime, str]] = Counter()
    nulls: Counter[tuple[datetime, str]] = Counter()
    for change in changes:
        assert epoch is not None
        start = epoch + (change.committed_at - epoch) // bin * bin
        for signal, to_null in signals_of(change):
            if signal.column in ignore_columns:
                continue
            counts[start, signal.label] += 1
            nulls[start, signal.label] += to_null
    return [Bucket(start, signal, count, nulls[start, signal])
            for (start, signal), count in sorted(counts.items())]


def _shipped(found: Source, table: str,
             until: datetime | None) -> tuple[list[SegmentManifest], list[Change]]:
    segments = list_segments(found.repo, found.key)
    return segments, list(shipped_changes(found.repo, segments, table, found.key, until=until))


@dataclass(frozen=True)
class Changes:
    changes: list[Change]  # shipped and live, one per position, in position order
    segments: list[SegmentManifest]
    unshipped: int
    warnings: tuple[str, ...]


async def read_changes(found: Source, table: str, since: datetime | None,
                       until: datetime | None) -> Changes:
    """The changes of `table` committed in [since, until] from the live log, then the segments.

    A live log that cannot be read (database down after a total loss) leaves the segments'
    answer with a warning; a repository that cannot be read raises BackupError.
    """
    warnings: list[str] = []
    live: list[Change] = []
    unread = "changes since the last incremental backup are not shown"
    if not found.database_url:
        warnings.append(f"VAXVAULT_DATABASE_URL is not set, so the live change log was not read; {unread}")
    else:
        try:
            live = await live_changes(found.database_url, table, after=None, until=until)
        except RestoreError as exc:
            warnings.append(f"the live change log could not be read ({exc}); {unread}")
    segments, shipped = await asyncio.to_thread(_shipped, found, table, until)
    positions = {c.position for c in shipped}
    changes = [c for c in merged(shipped, live) if since is None or c.committed_at >= since]
    unshipped = sum(1 for c in live if c.position not in positions
                    and (since is None or c.committed_at >= since))
    return Changes(changes, segments, unshipped, tuple(warnings))


def loss_windows(found: Source, read: Changes, table: str, since: datetime | None,
                 until: datetime | None) -> list[LossWindow]:
    """What `vaxvault restore find-loss` and findLoss report: the bursts of loss in the changes
    read, largest first, then where segments are missing between two snapshots the rows of
    `table` gone between them (manifests only), each meeting [since, until].

    Reads the snapshot manifests (blocking storage I/O); raises BackupError if it cannot.
    """
    windows = find_loss(read.changes, table=table, since=since, until=until)
    windows += [w for w in snapshot_differences(list_snapshots(found.repo, found.key),
                                                read.segments, table)
                if (since is None or w.end >= since) and (until is None or w.start <= until)]
    return windows


async def report(settings: Settings, table: str, since: datetime | None, until: datetime | None,
                 bin: timedelta) -> LossReport | RestoreNotConfigured | RestoreFailed:
    """The chart and the windows of unusual loss for `table` in [since, until].

    Raises BadUserInput for a bin that is not positive or would make too many bars.
    """
    if bin <= timedelta(0):
        raise BadUserInput(f"binSeconds: {bin.total_seconds():g} is not positive; give e.g. 60")
    if since is not None and until is not None and since > until:
        raise BadUserInput(f"since {since.isoformat()} is after until {until.isoformat()}")
    found = source(settings)
    if found is None:
        return RestoreNotConfigured()
    try:
        read = await read_changes(found, table, since, until)
        windows = await asyncio.to_thread(loss_windows, found, read, table, since, until)
    except BackupError as exc:
        return RestoreFailed(explain(exc))
    changes = read.changes
    times = [c.committed_at for c in changes]
    first, last = since or min(times, default=None), until or max(times, default=None)
    if first is not None and last is not None and (last - first) / bin > MAX_BUCKETS:
        raise BadUserInput(f"binSeconds: {bin.total_seconds():g} makes more than {MAX_BUCKETS} "
                           "bars over this window; choose a wider bin or a shorter window")
    chart = buckets(changes, bin)
    return LossReport(table=table, bin=bin, buckets=tuple(chart),
                      windows=tuple(windows), unshipped=read.unshipped,
                      warnings=read.warnings)
