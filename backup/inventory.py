"""What every stage holds: one row per snapshot or segment with its state at each stage."""

from __future__ import annotations

from dataclasses import dataclass

from backup.errors import BackupError
from backup.stages import Stage, manifest_key, scan
from backup.storage.manifest import SegmentManifest, SnapshotManifest, load

STORED = "stored"      # manifest present: every object was verified there
PENDING = "pending"    # committed in the spool, waiting for upload
PARTIAL = "partial"    # objects without a manifest (an interrupted run; removed by the next run)
MISSING = "missing"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class UnitState:
    kind: str
    id: str
    rows: int          # table rows of a snapshot, changes of a segment
    bytes: int
    states: dict[str, str]


def inventory(stages: list[Stage]) -> list[UnitState]:
    """Every unit any stage knows, oldest first, with its state per stage."""
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
                    key = manifest_key(kind, unit_id)
                    manifest = load(stage.repo.get(key), f"{stage.repo.url}/{key}")
        rows = size = 0
        if isinstance(manifest, SnapshotManifest):
            rows = sum(t.rows for t in manifest.tables)
            size = sum(r.size for r in manifest.objects())
        elif isinstance(manifest, SegmentManifest):
            rows, size = manifest.changes, manifest.object.size
        result.append(UnitState(kind, unit_id, rows, size, states))
    return result
