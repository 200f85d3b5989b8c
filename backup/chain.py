"""Which segments a stage can replay: those on an unbroken chain from one of its snapshots.

A segment no snapshot reaches (shipped with no base, or after a hole) restores nothing; one
whose changes a snapshot already holds is merely redundant. Pure functions of manifests.
"""

from __future__ import annotations

from collections.abc import Sequence

from backup.errors import FormatError
from backup.storage.manifest import SegmentManifest, SnapshotManifest
from backup.storage.position import includes


def _contained(segment: SegmentManifest, snapshots: Sequence[SnapshotManifest]) -> bool:
    for snapshot in snapshots:
        try:
            if includes(snapshot.position, segment.to_position):
                return True
        except FormatError:
            continue
    return False


def unreachable_segments(snapshots: Sequence[SnapshotManifest],
                         segments: Sequence[SegmentManifest]) -> list[SegmentManifest]:
    """The segments that no snapshot's chain reaches and that no snapshot already contains."""
    by_start: dict[str, SegmentManifest] = {s.from_position: s for s in segments}
    empty_links = {s.continues: s.position for s in snapshots if s.continues and s.continues != s.position}
    reached: set[str] = set()
    for snapshot in snapshots:
        position, seen = snapshot.position, {snapshot.position}
        while True:
            if position in by_start and by_start[position].id not in reached:
                reached.add(by_start[position].id)
                position = by_start[position].to_position
            elif position in empty_links and empty_links[position] not in seen:
                position = empty_links[position]
            else:
                break
            seen.add(position)
    return [s for s in segments if s.id not in reached and not _contained(s, snapshots)]
