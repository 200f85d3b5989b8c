"""Which segments a stage can replay: those on an unbroken chain from one of its snapshots.

A segment no snapshot reaches (shipped with no base, or after a hole) restores nothing; one
whose changes a snapshot already holds is merely redundant. Pure functions of manifests, or of
the listing index's entries, which carry the same positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from backup.errors import FormatError
from backup.storage.position import includes


class SnapshotLike(Protocol):
    @property
    def position(self) -> str: ...
    @property
    def continues(self) -> str | None: ...


class SegmentLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def from_position(self) -> str: ...
    @property
    def to_position(self) -> str: ...


SegmentT = TypeVar("SegmentT", bound=SegmentLike)


def _contained(segment: SegmentLike, snapshots: Sequence[SnapshotLike]) -> bool:
    for snapshot in snapshots:
        try:
            if includes(snapshot.position, segment.to_position):
                return True
        except FormatError:
            continue
    return False


def unreachable_segments(snapshots: Sequence[SnapshotLike],
                         segments: Sequence[SegmentT]) -> list[SegmentT]:
    """The segments that no snapshot's chain reaches and that no snapshot already contains."""
    by_start: dict[str, SegmentT] = {s.from_position: s for s in segments}
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
