"""The listing of a stage as runs, prune, verify and `backup list` use it: the checked index
(backup/storage/listing.py, where the checks are explained), the spool listed in full, and the
newest units for the console."""

from __future__ import annotations

from backup.storage.codec import Key
from backup.storage.index import SegmentEntry, SnapshotEntry
from backup.storage.listing import (
    FULL,
    INDEX,
    Listing,
    full_listing,
    list_stage,
    units_of,
    write_index,
)
from backup.storage.repository import Repository

__all__ = ["FULL", "INDEX", "Listing", "full_listing", "list_stage", "newest_units", "stage_listing",
           "units_of", "write_index"]


def stage_listing(stage_name: str, repo: Repository, key: Key | None) -> Listing:
    """The spool (small, local, never indexed) in full; any other stage by `list_stage`."""
    return full_listing(repo, key) if stage_name == "spool" else list_stage(repo, key)


def newest_units(repo: Repository, key: Key | None) -> tuple[SnapshotEntry | None, SegmentEntry | None]:
    """The newest readable snapshot and segment of a stage (for the console's "last backup"),
    at the cost of `list_stage`."""
    listing = list_stage(repo, key)
    snapshots = [e for e in listing.entries.values() if isinstance(e, SnapshotEntry)]
    segments = [e for e in listing.entries.values() if isinstance(e, SegmentEntry)]
    return (max(snapshots, key=lambda e: e.id, default=None),
            max(segments, key=lambda e: e.id, default=None))
