"""What every stage holds: one row per snapshot or segment with its state at each stage."""

from __future__ import annotations

from dataclasses import dataclass

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
        rows = size = 0
        if isinstance(manifest, SnapshotManifest):
            rows = sum(t.rows for t in manifest.tables)
            size = sum(r.size for r in manifest.objects())
        elif isinstance(manifest, SegmentManifest):
            rows, size = manifest.changes, manifest.object.size
        result.append(UnitState(kind, unit_id, rows, size, states))
    return result
