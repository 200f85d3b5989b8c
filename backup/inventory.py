"""What every stage holds: one row per snapshot or segment with its state at each stage."""

from __future__ import annotations

from dataclasses import dataclass

from backup.chain import unreachable_segments
from backup.errors import BackupError
from backup.listing import Listing, stage_listing
from backup.stages import Stage
from backup.storage.codec import Key
from backup.storage.index import Entry, SegmentEntry, SnapshotEntry

STORED = "stored"      # manifest present: every object was verified there
PENDING = "pending"    # committed in the spool, waiting for upload
PARTIAL = "partial"    # objects without a manifest (an interrupted run; removed by the next run)
MISSING = "missing"
UNREACHABLE = "unreachable"
REFUSED = "refused"    # the manifest fails authentication with the key (or cannot be read)
ORPHAN = "orphan"      # a stored segment no snapshot at that stage reaches: it restores nothing


@dataclass(frozen=True)
class UnitState:
    kind: str
    id: str
    rows: int          # table rows of a snapshot, changes of a segment
    bytes: int
    states: dict[str, str]


def inventory(stages: list[Stage], key: Key | None = None) -> list[UnitState]:
    """Every unit any stage knows, oldest first, with its state per stage. Each stage but the
    spool answers from its checked index (backup/listing.py): the cost does not grow with history."""
    seen: dict[str, Listing] = {}
    unreachable: set[str] = set()
    for stage in stages:
        try:
            seen[stage.name] = stage_listing(stage.name, stage.repo, key)
        except BackupError:
            unreachable.add(stage.name)
    units = sorted({u for found in seen.values() for u in (*found.committed(), *found.partial)},
                   key=lambda u: (u[1], u[0]))
    result = []
    for unit in units:
        states = {}
        entry: Entry | None = None
        for stage in stages:
            listing = seen.get(stage.name)
            if listing is None:
                states[stage.name] = UNREACHABLE
            elif unit in listing.entries:
                states[stage.name] = PENDING if stage.name == "spool" else STORED
                entry = entry or listing.entries[unit]
            elif unit in listing.refused:
                states[stage.name] = REFUSED
            elif unit in listing.partial:
                states[stage.name] = PARTIAL
            else:
                states[stage.name] = MISSING if stage.name != "spool" else "-"
        rows, size = (entry.rows, entry.bytes) if entry else (0, 0)
        result.append(UnitState(unit[0], unit[1], rows, size, states))
    _mark_orphans(result, seen, [s.name for s in stages[1:]])
    return result


def _mark_orphans(units: list[UnitState], seen: dict[str, Listing], stage_names: list[str]) -> None:
    """Mark ORPHAN the segments stored at a stage that none of that stage's snapshots reaches."""
    for name in stage_names:
        if name not in seen:
            continue
        held = list(seen[name].entries.values())
        orphans = {s.id for s in unreachable_segments(
            [e for e in held if isinstance(e, SnapshotEntry)],
            [e for e in held if isinstance(e, SegmentEntry)])}
        for unit in units:
            if unit.kind == "segment" and unit.id in orphans and unit.states.get(name) == STORED:
                unit.states[name] = ORPHAN
