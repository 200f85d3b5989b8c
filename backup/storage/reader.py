"""Reading a repository: committed snapshots and segments, chunk rows and segment changes.

This is the interface restore builds on; it needs nothing but the repository (and the key when
objects are encrypted). Every read checks the object's SHA-256 against its manifest; with a key,
manifests and objects alike must be sealed with it (authenticated) or they are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from backup.errors import ChecksumMismatch, FormatError, ObjectNotFound, SnapshotNotFound
from backup.storage import codec, keys
from backup.storage.change import Change
from backup.storage.codec import Key
from backup.storage.keys import parse_id
from backup.storage.listing import Listing, list_stage
from backup.storage.manifest import (
    Chunk,
    ObjectRef,
    SegmentManifest,
    SnapshotManifest,
    TableImage,
    decode_manifest,
)
from backup.storage.repository import Repository
from backup.storage.segment import decode_changes

CopyRow = dict[str, str | None]
M = TypeVar("M", SnapshotManifest, SegmentManifest)


def _committed_ids(listing: Listing, kind: str, after: str = "") -> list[str]:
    """Ids of the committed units of `kind` (readable or refused) from `after` on, oldest first."""
    return sorted(i for k, i in listing.committed() if k == kind and i >= after)


def _read_all(ids: list[str], read: Callable[[str], M]) -> list[M]:
    """The manifests of `ids`. One that is gone since the listing (a unit deleted behind an index
    that still lists it) is absent, as a full listing would have it; one that fails
    authentication raises, as it always did."""
    found = []
    for unit_id in ids:
        try:
            found.append(read(unit_id))
        except SnapshotNotFound:
            continue
    return found


def _snapshots(repo: Repository, ids: list[str], key: Key | None) -> list[SnapshotManifest]:
    return _read_all(ids, lambda i: read_snapshot(repo, i, key))


def _segments(repo: Repository, ids: list[str], key: Key | None) -> list[SegmentManifest]:
    return _read_all(ids, lambda i: read_segment_manifest(repo, i, key))


def list_snapshots(repo: Repository, key: Key | None = None) -> list[SnapshotManifest]:
    """Every committed snapshot (one with a manifest), oldest first. The ids come from the stage's
    checked listing index (storage/listing.py), so no key of the stage is listed in full."""
    return _snapshots(repo, _committed_ids(list_stage(repo, key), "snapshot"), key)


def list_segments(repo: Repository, key: Key | None = None) -> list[SegmentManifest]:
    """Every committed segment, in cut order (which is the order to replay them); ids as above."""
    return _segments(repo, _committed_ids(list_stage(repo, key), "segment"), key)


def history_from(repo: Repository, as_of: datetime,
                 key: Key | None = None) -> tuple[list[SnapshotManifest], list[SegmentManifest]]:
    """The manifests a restore as of `as_of` needs (restore/source.choose gives the same answer
    with them as with every manifest): the newest snapshot cut at or before it and every snapshot
    and segment from it on (its chain, the links across full runs with no segment, what breaks
    the chain). Units before it cannot be on its chain (positions only grow), so their manifests
    are not read: the cost follows the history after the base, not all of it. A manifest the
    stage lists as refused is read anyway, so it raises as it did when every manifest was read."""
    listing = list_stage(repo, key)
    for kind, unit_id in sorted(listing.refused):
        (read_snapshot if kind == "snapshot" else read_segment_manifest)(repo, unit_id, key)
    snapshots = _committed_ids(listing, "snapshot")
    usable = [i for i in snapshots if parse_id(i) <= as_of]
    base = _snapshots(repo, usable[-1:], key)
    if not base:  # none that old (choose says so), or its manifest gone behind the index
        return _snapshots(repo, snapshots, key), _segments(repo, _committed_ids(listing, "segment"), key)
    return ([*base, *_snapshots(repo, [i for i in snapshots if i > base[0].id], key)],
            _segments(repo, _committed_ids(listing, "segment", base[0].id), key))


def read_snapshot(repo: Repository, snapshot_id: str, key: Key | None = None) -> SnapshotManifest:
    """The manifest of one snapshot; SnapshotNotFound when it has none (incomplete or absent)."""
    object_key = keys.format_snapshot_manifest_key(snapshot_id)
    try:
        data = repo.get(object_key)
    except ObjectNotFound as exc:
        raise SnapshotNotFound(
            f"snapshot {snapshot_id} is absent or incomplete (no manifest) in {repo.url}; "
            "run 'vaxvault backup list' and choose another") from exc
    manifest = decode_manifest(data, object_key, key, f"{repo.url}/{object_key}")
    if not isinstance(manifest, SnapshotManifest):
        raise FormatError(f"{repo.url}/{object_key} is not a snapshot manifest")
    return manifest


def read_segment_manifest(repo: Repository, segment_id: str, key: Key | None = None) -> SegmentManifest:
    object_key = keys.format_segment_manifest_key(segment_id)
    try:
        data = repo.get(object_key)
    except ObjectNotFound as exc:
        raise SnapshotNotFound(f"segment {segment_id} is absent or incomplete in {repo.url}") from exc
    manifest = decode_manifest(data, object_key, key, f"{repo.url}/{object_key}")
    if not isinstance(manifest, SegmentManifest):
        raise FormatError(f"{repo.url}/{object_key} is not a segment manifest")
    return manifest


def read_object(repo: Repository, ref: ObjectRef) -> bytes:
    """The stored bytes of `ref`; ChecksumMismatch when they differ from the manifest."""
    data = repo.get(ref.key)
    actual = codec.sha256(data)
    if actual != ref.sha256:
        raise ChecksumMismatch(f"{repo.url}/{ref.key} is corrupted: SHA-256 {actual[:16]}..., "
                               f"manifest says {ref.sha256[:16]}...; restore it from another stage")
    return data


def read_schema(repo: Repository, snapshot: SnapshotManifest, key: Key | None) -> str:
    """The DDL that recreates the snapshot's tables in an empty database."""
    return codec.decode(read_object(repo, snapshot.schema), snapshot.schema.key, key).decode()


def read_chunk(repo: Repository, chunk: Chunk, key: Key | None) -> bytes:
    """A chunk's rows in PostgreSQL COPY text format (load with COPY ... FROM STDIN)."""
    return codec.decode(read_object(repo, chunk.object), chunk.object.key, key)


def read_changes(repo: Repository, segment: SegmentManifest, key: Key | None) -> list[Change]:
    """The segment's changes in position order."""
    data = codec.decode(read_object(repo, segment.object), segment.object.key, key)
    return decode_changes(data, f"{repo.url}/{segment.object.key}")


def iter_chunk_rows(repo: Repository, table: TableImage, chunk: Chunk, key: Key | None) -> Iterator[CopyRow]:
    """The chunk's rows as column -> text value (COPY text rendering; None for NULL)."""
    names = [c.name for c in table.columns]
    for line in read_chunk(repo, chunk, key).split(b"\n"):
        if line:
            yield dict(zip(names, parse_copy_line(line.decode()), strict=True))


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescape(match: re.Match[str]) -> str:
    token = match.group(1)
    if token[0] == "x" and len(token) > 1:
        return chr(int(token[1:], 16))
    if token[0] in "01234567":
        return chr(int(token, 8))
    return _SIMPLE.get(token, token)


def parse_copy_line(line: str) -> list[str | None]:
    """Split one COPY text-format line into field values (\\N is NULL)."""
    return [None if field == r"\N" else _ESCAPE.sub(_unescape, field) for field in line.split("\t")]
