"""Reading a repository: committed snapshots and segments, chunk rows and segment changes.

This is the interface restore builds on; it needs nothing but the repository (and the key when
objects are encrypted). Every read checks the object's SHA-256 against its manifest; with a key,
manifests and objects alike must be sealed with it (authenticated) or they are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from backup.errors import ChecksumMismatch, FormatError, ObjectNotFound, SnapshotNotFound
from backup.storage import codec, keys
from backup.storage.change import Change
from backup.storage.codec import Key
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


def _manifest_ids(repo: Repository, root: str) -> list[str]:
    ids = []
    for info in repo.list(f"{root}/"):
        try:
            parsed = keys.parse_key(info.key)
        except FormatError:
            continue
        if parsed.part == "manifest":
            ids.append(parsed.id)
    return sorted(ids)


def list_snapshots(repo: Repository, key: Key | None = None) -> list[SnapshotManifest]:
    """Every committed snapshot (one with a manifest), oldest first."""
    return [read_snapshot(repo, sid, key) for sid in _manifest_ids(repo, keys.SNAPSHOTS)]


def list_segments(repo: Repository, key: Key | None = None) -> list[SegmentManifest]:
    """Every committed segment, in cut order (which is the order to replay them)."""
    return [read_segment_manifest(repo, sid, key) for sid in _manifest_ids(repo, keys.SEGMENTS)]


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
