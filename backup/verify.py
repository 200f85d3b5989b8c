"""Verifying stored units at every stage: every manifest readable (with a key: authenticated), every
object present with its SHA-256; with `deep`, decrypted, decompressed and re-counted."""

from __future__ import annotations

from dataclasses import dataclass

from backup.chain import unreachable_segments
from backup.errors import BackupError, SnapshotNotFound, StorageError
from backup.listing import INDEX, list_stage
from backup.stages import Manifest, Stage, committed_units, manifest_key, read_manifest
from backup.storage.codec import Key
from backup.storage.index import INDEX_KEY
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest
from backup.storage.object_check import check_object


@dataclass(frozen=True)
class Problem:
    stage: str
    url: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.stage} {self.url}: {self.key}: {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    units: int
    objects: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _expected_rows(manifest: Manifest, ref: ObjectRef) -> int | None:
    if isinstance(manifest, SegmentManifest):
        image = next((i for i in manifest.images if i.object.key == ref.key), None)
        return image.rows if image is not None else manifest.changes
    for table in manifest.tables:
        for chunk in table.chunks:
            if chunk.object.key == ref.key:
                return chunk.rows
    return None


def _check(stage: Stage, manifest: Manifest, ref: ObjectRef, deep: bool, key: Key | None) -> str | None:
    """The problem with one object, or None when it is sound. The object is read in pieces
    (backup/storage/object_check.py): memory stays flat however large a chunk or segment is."""
    try:
        info = stage.repo.head(ref.key)
        if info is None:
            return "missing"
        if info.size != ref.size:
            return f"size {info.size} bytes, manifest says {ref.size}"
        facts = check_object(stage.repo.stream(ref.key), ref.key, key, deep,
                             changes=isinstance(manifest, SegmentManifest) and ref.key == manifest.object.key)
    except StorageError as exc:
        return f"unreadable: {exc}"
    if facts.sha256 != ref.sha256:
        return "SHA-256 mismatch (corrupted)"
    if not deep:
        return None
    if facts.problem is not None:
        return facts.problem
    expected = _expected_rows(manifest, ref)
    if expected is not None and facts.rows != expected:
        return f"holds {facts.rows} rows, manifest says {expected}"
    return None


def _orphans(stage: Stage, manifests: list[Manifest]) -> list[Problem]:
    snapshots = [m for m in manifests if isinstance(m, SnapshotManifest)]
    segments = [m for m in manifests if isinstance(m, SegmentManifest)]
    return [Problem(stage.name, stage.repo.url, manifest_key("segment", s.id),
                    "no snapshot at this stage reaches this segment (no base before it, or a segment "
                    "missing between), so it restores nothing; run 'vaxvault backup run --full'")
            for s in unreachable_segments(snapshots, segments)]


def _index_problems(stage: Stage, key: Key | None, listed: list[tuple[str, str]]) -> list[Problem]:
    """Whether the stage's listing index says what the full listing says (backup/listing.py): a
    refused index (forged, unsealed, another repository's), or a checked index that disagrees
    (a unit deleted from the middle of the history, which its checks cannot see)."""
    def problem(reason: str) -> Problem:
        return Problem(stage.name, stage.repo.url, INDEX_KEY, reason)
    try:
        listing = list_stage(stage.repo, key)
    except BackupError as exc:
        return [problem(f"cannot be checked: {exc}")]
    if listing.index_refused:
        return [problem(f"refused, so every reader lists this stage in full: {listing.index_refused}; "
                        "the next 'vaxvault backup run' rewrites it")]
    if listing.source != INDEX:
        return []
    full = set(listed)
    invented = sorted(listing.committed() - full)
    hidden = sorted(full - listing.committed())
    if not invented and not hidden:
        return []
    said = "; ".join(part for part in (
        "lists " + ", ".join(f"{k} {i}" for k, i in invented) + " (not stored)" if invented else "",
        "omits " + ", ".join(f"{k} {i}" for k, i in hidden) if hidden else "") if part)
    return [problem(f"disagrees with the stage: {said}; delete it and the next "
                    "'vaxvault backup run' rebuilds it from a full listing")]


def verify(stages: list[Stage], unit_id: str | None = None, deep: bool = False,
           key: Key | None = None) -> VerifyReport:
    """Check every committed unit (or only `unit_id`) at every stage.

    Raises SnapshotNotFound when `unit_id` is committed at no stage. Problems are reported, not raised.
    """
    problems: list[Problem] = []
    units = objects = 0
    found = False
    for stage in stages:
        try:
            listed = committed_units(stage.repo)
        except BackupError as exc:
            problems.append(Problem(stage.name, stage.repo.url, "*", f"cannot list the stage: {exc}"))
            continue
        read_ok: list[Manifest] = []
        for kind, listed_id in listed:
            if unit_id is not None and listed_id != unit_id:
                continue
            found = True
            units += 1
            try:
                manifest = read_manifest(stage.repo, kind, listed_id, key)
            except BackupError as exc:  # unreadable, or refused: not authenticated with the key
                problems.append(Problem(stage.name, stage.repo.url, manifest_key(kind, listed_id), str(exc)))
                continue
            read_ok.append(manifest)
            for ref in manifest.objects():
                objects += 1
                reason = _check(stage, manifest, ref, deep, key)
                if reason:
                    problems.append(Problem(stage.name, stage.repo.url, ref.key, reason))
        if unit_id is None and stage.name != "spool":  # the spool only holds what waits for upload
            problems.extend(_orphans(stage, read_ok))
            problems.extend(_index_problems(stage, key, listed))
    if unit_id is not None and not found:
        raise SnapshotNotFound(f"no committed snapshot or segment {unit_id!r} at any stage; "
                               "run 'vaxvault backup list' to see the ids")
    return VerifyReport(units, objects, tuple(problems))
