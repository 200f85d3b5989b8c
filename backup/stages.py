"""Stages: the spool (1), the primary repository (2) and replicas (3), and moving units between them.

A unit is one snapshot or one segment: its objects plus its manifest. A unit counts as stored at a
stage only when its manifest is there, and the manifest is written only after every object of
the unit matched its SHA-256 at that stage (read back, or for a directory hashed as it was written:
backup/storage/transfer.py).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from backup.errors import ChecksumMismatch, FormatError, StorageError
from backup.listing import Listing, list_stage, units_of, write_index
from backup.storage import keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.index import SnapshotEntry, entry_of
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest, decode_manifest
from backup.storage.position import includes
from backup.storage.repository import Repository, open_repository
from backup.storage.transfer import stored_sha256, streamed_sha256

Manifest = SnapshotManifest | SegmentManifest
# Objects of a unit are uploaded (and read back) in parallel: on a remote store the round trips,
# not the bytes, dominate small objects. boto3 clients are thread-safe.
UPLOAD_THREADS = 4


@dataclass(frozen=True)
class Stage:
    name: str
    repo: Repository


def build_stages(spool: FileRepository, primary_url: str | None, replica_urls: tuple[str, ...],
                 s3_endpoint_url: str | None) -> list[Stage]:
    """[spool, primary, replica-1, ...] in stage order."""
    stages = [Stage("spool", spool)]
    if primary_url:
        stages.append(Stage("primary", open_repository(primary_url, s3_endpoint_url)))
    stages.extend(Stage(f"replica-{n}", open_repository(url, s3_endpoint_url))
                  for n, url in enumerate(replica_urls, start=1))
    return stages


def unit_prefix(kind: str, unit_id: str) -> str:
    return keys.snapshot_prefix(unit_id) if kind == "snapshot" else keys.segment_prefix(unit_id)


def manifest_key(kind: str, unit_id: str) -> str:
    return (keys.format_snapshot_manifest_key(unit_id) if kind == "snapshot"
            else keys.format_segment_manifest_key(unit_id))


def scan(repo: Repository) -> dict[tuple[str, str], bool]:
    """(kind, id) -> committed? for every unit with at least one object in `repo`."""
    return units_of(repo.list())


def committed_units(repo: Repository) -> list[tuple[str, str]]:
    """(kind, id) of the committed units of `repo`, in id order (segments before snapshots on a tie)."""
    return [unit for unit, committed in sorted(scan(repo).items(), key=lambda i: (i[0][1], i[0][0]))
            if committed]


def read_manifest(repo: Repository, kind: str, unit_id: str, key: Key | None) -> Manifest:
    """One unit's manifest, authenticated with `key` when it is set (see manifest.decode_manifest)."""
    object_key = manifest_key(kind, unit_id)
    return decode_manifest(repo.get(object_key), object_key, key, f"{repo.url}/{object_key}")


def committed_manifests(repo: Repository, key: Key | None) -> list[Manifest]:
    """Manifests of the committed units of `repo`, in id order (segments before snapshots on a tie)."""
    return [read_manifest(repo, kind, unit_id, key) for kind, unit_id in committed_units(repo)]


def remove_unit(repo: Repository, kind: str, unit_id: str) -> int:
    """Delete a unit, manifest first so it never looks complete while going; return objects removed."""
    objects = repo.list(unit_prefix(kind, unit_id))
    key = manifest_key(kind, unit_id)
    repo.delete(key)
    for info in objects:
        if info.key != key:
            repo.delete(info.key)
    return len(objects)


def remove_orphans(repo: Repository, listing: Listing | None = None) -> int:
    """Remove uncommitted units (left by a killed run) and partial uploads; return how many objects.
    With the stage's `listing`, only the uncommitted units it found, and the key ranges it read
    after its index, are looked at (a killed run's unit sorts after every committed one)."""
    if listing is not None and listing.tail_ranges:
        removed = sum(repo.clean_incomplete(prefix, after) for prefix, after in listing.tail_ranges)
    else:
        removed = repo.clean_incomplete()
    if listing is not None:
        for kind, unit_id in sorted(listing.partial):
            removed += remove_unit(repo, kind, unit_id)
        listing.partial.clear()
        return removed
    for (kind, unit_id), committed in scan(repo).items():
        if not committed:
            removed += remove_unit(repo, kind, unit_id)
    return removed


def _verified_copy(source: FileRepository, target: Repository, key: str, sha256: str) -> int:
    for _attempt in range(2):
        if stored_sha256(target, key, source.root / key) == sha256:
            return 1
        target.delete(key)
    # A target hard-linked to the spool holds the spool's own bytes: before blaming the target,
    # see whether the spool file itself changed since its manifest was written.
    if streamed_sha256(source, key) != sha256:
        raise ChecksumMismatch(f"{source.url}/{key} (the spool's copy) no longer matches its "
                               "manifest's SHA-256: it was damaged on the spool's disk after "
                               "it was written, and nothing was stored from it; check that disk")
    raise ChecksumMismatch(f"{target.url}/{key} does not match its SHA-256 after upload twice; "
                           "check the storage endpoint")


class EarlyUploads:
    """Uploads (and reads back) objects to the target stages while a snapshot is still being cut,
    so the push after the cut has little left to do. Failures are only remembered: push retries
    those objects and reports what still fails. The unit's manifest is never uploaded here."""

    def __init__(self, spool: FileRepository, targets: list[Stage]) -> None:
        self.spool = spool
        self.targets = targets
        self.pool = ThreadPoolExecutor(max_workers=UPLOAD_THREADS)
        self.futures: dict[tuple[str, str], Future[int]] = {}

    def submit(self, ref: ObjectRef) -> None:
        for target in self.targets:
            self.futures[(target.name, ref.key)] = self.pool.submit(
                _verified_copy, self.spool, target.repo, ref.key, ref.sha256)

    def verified(self, stage_name: str) -> set[str]:
        """Keys verified at `stage_name` (waits for the uploads still running)."""
        wait(self.futures.values())
        return {key for (name, key), future in self.futures.items()
                if name == stage_name and future.exception() is None}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _contained(listing: Listing, manifest: Manifest, oldest_only: bool) -> bool:
    """Whether a snapshot the stage holds (its oldest one, or any), cut no earlier than the unit,
    contains it: the stage then no longer needs the unit."""
    snapshots = sorted((e for e in listing.entries.values() if isinstance(e, SnapshotEntry)),
                       key=lambda e: e.id)
    position = manifest.position if isinstance(manifest, SnapshotManifest) else manifest.to_position
    for snapshot in snapshots[:1] if oldest_only else snapshots:
        if manifest.id > snapshot.id or (manifest.kind, manifest.id) == ("snapshot", snapshot.id):
            continue
        try:
            # Positions, not ids alone: a unit cut after a clock step backwards has an old id but
            # a new position, and must never be passed over.
            if includes(snapshot.position, position):
                return True
        except FormatError:
            continue
    return False


def push(spool: FileRepository, target: Stage, key: Key | None,
         verified: set[str] | None = None, listing: Listing | None = None) -> list[str]:
    """Copy every committed spool unit the target lacks, verified; return the ids pushed.
    Objects in `verified` were already read back from the target and are skipped. The target's
    `listing` (listed here when not given) says what it lacks; the pushed units are added to it and
    the stage's index is rewritten when it no longer matches (after the commits: a crash between
    leaves a stale index, whose tail shows the new units).

    Units commit at a stage only in id order, newer than its newest of their kind, which is what
    lets a reader trust any index's tail (backup/storage/listing.py): no index, however old, lists a
    newer unit of that kind and lacks this one. A lacking unit that lies before what the stage
    keeps (its oldest snapshot contains it: prune removed it there while the spool kept it for
    another stage) is passed over: recorded in `listing.passed_over`, so `release` drops it for
    this stage; so is one older than the stage's newest of its kind that any snapshot there
    contains. Any other lacking unit older than the stage's newest of its kind (deleted there
    by hand, or cut after the server clock stepped back) is not pushed: once the rest is pushed,
    StorageError names it, and the spool keeps it until a snapshot at the stage contains it.

    Raises StorageError on a persistent failure; the spool keeps everything not yet stored.
    """
    if listing is None:
        listing = list_stage(target.repo, key)
    pushed = []
    done = verified or set()
    newest = {kind: listing.newest(kind) for kind in ("snapshot", "segment")}
    late: list[Manifest] = []
    for manifest in committed_manifests(spool, key):
        unit = (manifest.kind, manifest.id)
        if unit in listing.entries or unit in listing.refused:
            continue
        before = newest[manifest.kind]
        is_late = before is not None and manifest.id < before[1]
        # Before what the stage keeps (its oldest snapshot contains it): what prune removes there.
        # A late unit contained by any snapshot there: its changes are there already.
        if _contained(listing, manifest, oldest_only=not is_late):
            listing.passed_over.add(unit)
            continue
        if is_late:
            late.append(manifest)
            continue
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            # list() re-raises the first failure here, after the other uploads finished.
            list(pool.map(lambda ref: _verified_copy(spool, target.repo, ref.key, ref.sha256),
                          [ref for ref in manifest.objects() if ref.key not in done]))
        object_key = manifest_key(manifest.kind, manifest.id)
        data = spool.get(object_key)
        target.repo.put(object_key, data)
        if target.repo.get(object_key) != data:
            raise StorageError(f"{target.repo.url}/{object_key} reads back different bytes; "
                               "check the storage endpoint")
        pushed.append(manifest.id)
        listing.add(entry_of(manifest))
        newest[manifest.kind] = unit
    if pushed or listing.stale():
        write_index(target.repo, listing, key)
    # A snapshot pushed above (a full run) may now contain what was late.
    refused = []
    for manifest in late:
        if _contained(listing, manifest, oldest_only=False):
            listing.passed_over.add((manifest.kind, manifest.id))
        else:
            refused.append(f"{manifest.kind} {manifest.id}")
    if refused:
        raise StorageError(
            f"{target.repo.url} holds newer units than {', '.join(refused)} but not these, and no "
            "snapshot there contains them (deleted there after they were stored, or cut after the "
            "server clock stepped back); they stay in the spool and are not pushed out of order. "
            "Run 'vaxvault backup run --full': once a snapshot there contains them, they are no "
            "longer needed there")
    return pushed


def release(spool: FileRepository, targets: list[Stage],
            listings: dict[str, Listing] | None = None) -> list[str]:
    """Drop from the spool every unit that every target stage holds or no longer needs (push's
    `listing.passed_over`); return their ids. With
    `listings` (stage name -> listing), a target without one is taken as unreachable."""
    if not targets:
        return []
    try:
        # A unit push passed over at a stage (it lies before what the stage keeps) counts as held.
        held = [scan(t.repo) if listings is None
                else dict.fromkeys(listings[t.name].committed() | listings[t.name].passed_over, True)
                for t in targets]
    except (StorageError, KeyError):
        return []
    released = []
    for (kind, unit_id), committed in scan(spool).items():
        if committed and all(h.get((kind, unit_id)) for h in held):
            remove_unit(spool, kind, unit_id)
            released.append(unit_id)
    return released
