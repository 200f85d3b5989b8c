"""What every stage holds: one row per snapshot or segment with its state at each stage."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from backup.chain import unreachable_segments
from backup.errors import BackupError
from backup.listing import Listing, stage_listing
from backup.stages import Stage
from backup.storage.codec import Key
from backup.storage.index import Entry, SegmentEntry, SnapshotEntry, UnitRef

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


@dataclass(frozen=True)
class StageSummary:
    """What one stage holds, in counts and ends: the same size however long the history.
    Counts are of units in each state there; oldest/newest are ids of committed units."""

    stage: str
    reachable: bool
    source: str                        # "index" or "full" (how the stage was listed); "" unreachable
    counts: dict[str, int]             # state -> units (stored, pending, orphan, partial, refused)
    snapshots: int                     # committed snapshots (readable or refused)
    segments: int
    rows: int                          # table rows of its snapshots plus changes of its segments
    bytes: int
    oldest_snapshot: str | None
    newest_snapshot: str | None
    oldest_segment: str | None
    newest_segment: str | None


@dataclass(frozen=True)
class Overview:
    """`backup list` by default: a summary per stage and the newest `last` units any stage knows."""

    stages: list[StageSummary]
    units: list[UnitState]             # oldest first, the newest `last` of them
    total: int                         # units any stage knows


def _list_all(stages: list[Stage], key: Key | None) -> dict[str, Listing]:
    """Stage name -> listing, for the stages that can be listed (the others are unreachable)."""
    seen: dict[str, Listing] = {}
    for stage in stages:
        with suppress(BackupError):  # unreachable: absent from the answer, shown as such
            seen[stage.name] = stage_listing(stage.name, stage.repo, key)
    return seen


def _orphans(listing: Listing) -> set[str]:
    held = list(listing.entries.values())
    return {s.id for s in unreachable_segments([e for e in held if isinstance(e, SnapshotEntry)],
                                               [e for e in held if isinstance(e, SegmentEntry)])}


def _states(units: list[UnitRef], stages: list[Stage], seen: dict[str, Listing],
            orphans: dict[str, set[str]]) -> list[UnitState]:
    result = []
    for unit in units:
        states = {}
        entry: Entry | None = None
        for stage in stages:
            listing = seen.get(stage.name)
            if listing is None:
                states[stage.name] = UNREACHABLE
            elif unit in listing.entries:
                stored = ORPHAN if unit[0] == "segment" and unit[1] in orphans.get(stage.name, ()) \
                    else STORED
                states[stage.name] = PENDING if stage.name == "spool" else stored
                entry = entry or listing.entries[unit]
            elif unit in listing.refused:
                states[stage.name] = REFUSED
            elif unit in listing.partial:
                states[stage.name] = PARTIAL
            else:
                states[stage.name] = MISSING if stage.name != "spool" else "-"
        rows, size = (entry.rows, entry.bytes) if entry else (0, 0)
        result.append(UnitState(unit[0], unit[1], rows, size, states))
    return result


def _known(seen: dict[str, Listing]) -> list[UnitRef]:
    return sorted({u for found in seen.values() for u in (*found.committed(), *found.partial)},
                  key=lambda u: (u[1], u[0]))


def _orphans_by_stage(stages: list[Stage], seen: dict[str, Listing]) -> dict[str, set[str]]:
    """Stage name -> ids of the segments stored there that none of its snapshots reaches."""
    return {s.name: _orphans(seen[s.name]) for s in stages[1:] if s.name in seen}


def inventory(stages: list[Stage], key: Key | None = None) -> list[UnitState]:
    """Every unit any stage knows, oldest first, with its state per stage. Each stage but the
    spool answers from its checked index (backup/storage/listing.py), so no stage is listed in full; the
    answer itself has a row per unit (`overview` is its fixed-size summary)."""
    return overview(stages, key, None).units


def _summary(stage: Stage, listing: Listing | None, orphans: set[str]) -> StageSummary:
    if listing is None:
        return StageSummary(stage.name, False, "", {}, 0, 0, 0, 0, None, None, None, None)
    ids = {kind: [i for k, i in listing.committed() if k == kind] for kind in ("snapshot", "segment")}
    stored = PENDING if stage.name == "spool" else STORED
    counts = {stored: len(listing.entries) - len(orphans), ORPHAN: len(orphans),
              REFUSED: len(listing.refused), PARTIAL: len(listing.partial)}
    entries = listing.entries.values()
    return StageSummary(
        stage.name, True, listing.source, {state: n for state, n in counts.items() if n},
        len(ids["snapshot"]), len(ids["segment"]),
        sum(e.rows for e in entries), sum(e.bytes for e in entries),
        *(end for kind in ("snapshot", "segment") for end in
          ((min(ids[kind]), max(ids[kind])) if ids[kind] else (None, None))))


def overview(stages: list[Stage], key: Key | None = None, last: int | None = 20) -> Overview:
    """A summary per stage and the newest `last` units (None: every unit) with their state at
    every stage: output of a fixed size whatever the history (stages read as `inventory` does)."""
    seen = _list_all(stages, key)
    orphans = _orphans_by_stage(stages, seen)
    known = _known(seen)
    shown = known if last is None else known[-last:] if last else []
    return Overview([_summary(s, seen.get(s.name), orphans.get(s.name, set())) for s in stages],
                    _states(shown, stages, seen, orphans), len(known))
