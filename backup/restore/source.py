"""Where a restore's history comes from: the snapshot and segments to use for T, and their changes.

Choosing is a pure function of manifests; reading streams one segment at a time and keeps only
the changes of one table, so memory follows the table's changes, not the repository's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from backup.restore.errors import RestorePlanError
from backup.storage import codec
from backup.storage.change import Change
from backup.storage.codec import Key
from backup.storage.manifest import SegmentManifest, SnapshotManifest
from backup.storage.reader import list_segments, list_snapshots, read_object
from backup.storage.repository import Repository
from backup.storage.segment import decode_changes

LIVE_LOG = "vaxvault_backup.changes"


@dataclass(frozen=True)
class History:
    """What the repository holds for a point in time T: the base snapshot and the segments after it."""

    snapshot: SnapshotManifest
    segments: tuple[SegmentManifest, ...]
    gap_after: datetime | None = None  # the chain breaks after this cut: later changes are unknown


def choose(snapshots: Sequence[SnapshotManifest], segments: Sequence[SegmentManifest],
           as_of: datetime) -> History:
    """The latest snapshot cut at or before `as_of` and the unbroken chain of segments after it.

    Raises RestorePlanError when no snapshot is old enough, or when a segment is missing between
    the snapshot and `as_of` (the image at T would be wrong). A gap after `as_of` is recorded in
    gap_after: changes after it are unknown to the restore.
    """
    usable = [s for s in snapshots if s.cut_at <= as_of]
    if not usable:
        oldest = min((s.cut_at for s in snapshots), default=None)
        hint = f"the oldest snapshot is {oldest.isoformat()}" if oldest else "the repository has none"
        raise RestorePlanError(f"no snapshot at or before {as_of.isoformat()} ({hint}); "
                               "choose a later --as-of")
    snapshot = max(usable, key=lambda s: s.cut_at)
    by_start = {s.from_position: s for s in segments}
    chain: list[SegmentManifest] = []
    position = snapshot.position
    while position in by_start:
        segment = by_start.pop(position)
        chain.append(segment)
        position = segment.to_position
    reached = chain[-1].cut_at if chain else snapshot.cut_at
    stranded = [s for s in by_start.values() if s.cut_at > reached]
    if not stranded:
        return History(snapshot, tuple(chain))
    if reached < as_of:
        raise RestorePlanError(
            f"a segment is missing after {reached.isoformat()} (the next one, {min(s.id for s in stranded)}, "
            "does not continue the chain), so the rows as of T cannot be rebuilt; choose --as-of at or "
            f"before {reached.isoformat()}, or run 'vaxvault backup verify' and repair the repository")
    return History(snapshot, tuple(chain), gap_after=reached)


def segments_in_window(segments: Sequence[SegmentManifest], table: str, after: datetime | None,
                       until: datetime | None) -> Iterator[SegmentManifest]:
    """The segments holding changes of `table` whose commit-time range meets (after, until]."""
    for segment in segments:
        if table not in segment.tables:
            continue
        if after and segment.last_committed_at and segment.last_committed_at <= after:
            continue
        if until and segment.first_committed_at and segment.first_committed_at > until:
            continue
        yield segment


def load_history(repo: Repository, as_of: datetime) -> History:
    return choose(list_snapshots(repo), list_segments(repo), as_of)


def shipped_changes(repo: Repository, segments: Sequence[SegmentManifest], table: str,
                    key: Key | None, after: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Change]:
    """The changes of `table` in `segments` committed in (after, until], in position order per segment.

    Segments whose commit-time range lies outside the interval are not read.
    """
    for segment in segments_in_window(segments, table, after, until):
        data = codec.decode(read_object(repo, segment.object), segment.object.key, key)
        what = f"{repo.url}/{segment.object.key}"
        marker = f'"table":{json.dumps(table)}'.encode()
        for line in data.split(b"\n"):
            # Cheap test first: most lines of a busy segment belong to other tables.
            if marker not in line:
                continue
            for change in decode_changes(line, what):
                if change.table == table and (after is None or change.committed_at > after) \
                        and (until is None or change.committed_at <= until):
                    yield change
