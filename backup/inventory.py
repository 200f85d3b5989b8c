"""What every stage holds: one row per snapshot or segment with its state at each stage."""

from __future__ import annotations

from dataclasses import dataclass

from backup.chain import unreachable_segments
from backup.errors import BackupError
from backup.stages import Stage, read_manifest, scan
from backup.storage.codec import Key
from backup.storage.manifest import SegmentManifest, SnapshotManifest

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
    """Every unit any stage knows, oldest first, with its state per stage (manifests read with `key`)."""
    seen: dict[str, dict[tuple[str, str], bool]] = {}
    unreachable: set[str] = set()
    for stage in stages:
        try:
            seen[stage.name] = scan(stage.repo)
        except BackupError:
            seen[stage.name] = {}
            unreachable.add(stage.name)
    units = sorted({u for found in seen.values() for u in found}, key=lambda u: (u[1], u[0]))
    result = []
    manifests: dict[str, SnapshotManifest | SegmentManifest] = {}
    for kind, unit_id in units:
        states = {}
        manifest: SnapshotManifest | SegmentManifest | None = None
        for stage in stages:
            committed = seen[stage.name].get((kind, unit_id))
            if stage.name in unreachable:
                states[stage.name] = UNREACHABLE
            elif committed is None:
                states[stage.name] = MISSING if stage.name != "spool" else "-"
            elif not committed:
                states[stage.name] = PARTIAL
            else:
                states[stage.name] = PENDING if stage.name == "spool" else STORED
                if manifest is None:
                    try:
                        manifest = read_manifest(stage.repo, kind, unit_id, key)
                    except BackupError:
                        states[stage.name] = REFUSED
        if manifest is not None:
            manifests[unit_id + kind] = manifest
        rows = size = 0
        if isinstance(manifest, SnapshotManifest):
            rows = sum(t.rows for t in manifest.tables)
            size = sum(r.size for r in manifest.objects())
        elif isinstance(manifest, SegmentManifest):
            rows, size = manifest.changes, manifest.object.size
        result.append(UnitState(kind, unit_id, rows, size, states))
    _mark_orphans(result, manifests, [s.name for s in stages[1:]])
    return result


def _mark_orphans(units: list[UnitState], manifests: dict[str, SnapshotManifest | SegmentManifest],
                  stage_names: list[str]) -> None:
    """Mark ORPHAN the segments stored at a stage that none of that stage's snapshots reaches."""
    for name in stage_names:
        held = [manifests[u.id + u.kind] for u in units
                if u.states.get(name) == STORED and u.id + u.kind in manifests]
        orphans = {s.id for s in unreachable_segments(
            [m for m in held if isinstance(m, SnapshotManifest)],
            [m for m in held if isinstance(m, SegmentManifest)])}
        for unit in units:
            if unit.kind == "segment" and unit.id in orphans:
                unit.states[name] = ORPHAN
