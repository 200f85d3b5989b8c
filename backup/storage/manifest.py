"""Snapshot and segment manifests: the JSON commit points of the repository format.

A reader refuses a manifest whose major format version is newer than FORMAT_MAJOR. With a key,
the whole manifest is sealed like any object (AES-256-GCM bound to its object key): it is
authenticated, and the SHA-256s it vouches for authenticate every object it lists, while the date
bounds of personal columns stay out of sight. Listing needs only the object keys, which stay clear.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from backup.errors import DecryptionError, FormatError
from backup.storage import codec
from backup.storage.codec import Key

# 2: manifests sealed with the key (authenticated) when one is set; segments say how commit
# times were taken (commit_time). 1.x manifests are read only without a key (FORMAT.md).
# 2.1: segments may carry typed row images per table (`images`), which restore loads by COPY.
FORMAT_MAJOR = 2
FORMAT_MINOR = 1
FORMAT_VERSION = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"

JsonRow = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """An object of the repository with the SHA-256 and size of its stored bytes."""

    key: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Chunk:
    """A range of one table's rows in primary-key order.

    first_key/last_key: primary key of the first and last row (to_jsonb rendering).
    bounds: column -> [min, max] for the date/timestamp columns that have bounds ([null, null]
    when all null; backup/FORMAT.md says which); a column without them may match anywhere.
    """

    object: ObjectRef
    rows: int
    first_key: JsonRow | None
    last_key: JsonRow | None
    bounds: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TableImage:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    rows: int
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class SnapshotManifest:
    """A committed full snapshot. position: the pg_snapshot of the cut (changes visible in it are in
    the image); cut_at: server clock at the cut."""

    id: str
    cut_at: datetime
    position: str
    database: str
    server_version: str
    encryption_key_id: str | None
    schema: ObjectRef
    tables: tuple[TableImage, ...]
    format_version: str = FORMAT_VERSION
    kind: str = "snapshot"
    # Set when the run that cut this snapshot had no change to ship since `continues` (so it cut
    # no segment): a chain that reaches `continues` reaches `position` too. Format 2.0 on.
    continues: str | None = None

    def table(self, name: str) -> TableImage:
        for table in self.tables:
            if table.name == name:
                return table
        raise FormatError(f"snapshot {self.id} has no table {name!r}; it has "
                          f"{', '.join(t.name for t in self.tables)}")

    def objects(self) -> list[ObjectRef]:
        return [self.schema, *(c.object for t in self.tables for c in t.chunks)]


@dataclass(frozen=True)
class SegmentImage:
    """One table's changes of a segment as typed rows (COPY text, in position order): columns
    `position`, `committed_at`, `op`, then `columns`, holding the new image of an I or U, the key
    of a D (other columns NULL), nothing for a T. Restore loads it without parsing JSON."""

    table: str
    columns: tuple[Column, ...]
    rows: int
    object: ObjectRef


@dataclass(frozen=True)
class SegmentManifest:
    """A committed incremental segment: the changes whose transactions are visible in `to_position`
    and not in `from_position` (pg_snapshot texts), in position order."""

    id: str
    cut_at: datetime
    from_position: str
    to_position: str
    changes: int
    first_position: int | None
    last_position: int | None
    first_committed_at: datetime | None
    last_committed_at: datetime | None
    tables: tuple[str, ...]
    encryption_key_id: str | None
    object: ObjectRef
    format_version: str = FORMAT_VERSION
    kind: str = "segment"
    # "commit": committed_at is the commit timestamp; "capture": the capture clock, a lower bound
    # (track_commit_timestamp off); None: written by format 1, which did not say.
    commit_time: str | None = "commit"
    # Format 2.1 on: typed images of some (usually all) tables of the segment; the JSON lines of
    # `object` stay the whole record (find-loss, verify and older readers use them).
    images: tuple[SegmentImage, ...] = ()

    def objects(self) -> list[ObjectRef]:
        return [self.object, *(i.object for i in self.images)]

    def image(self, table: str) -> SegmentImage | None:
        return next((i for i in self.images if i.table == table), None)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def check_version(version: object, what: str) -> None:
    """Raise FormatError unless `version` is a format this reader understands."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError as exc:
        raise FormatError(f"{what} has an unreadable format_version {version!r}") from exc
    if major > FORMAT_MAJOR:
        raise FormatError(
            f"{what} uses repository format {version}, newer than this vaxvault reads "
            f"({FORMAT_VERSION}); upgrade vaxvault to read it")


def dump(manifest: SnapshotManifest | SegmentManifest) -> bytes:
    return json.dumps(asdict(manifest), default=_json_default, sort_keys=True, indent=1).encode()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _ref(data: dict) -> ObjectRef:
    return ObjectRef(key=data["key"], sha256=data["sha256"], size=int(data["size"]))


def load(data: bytes, what: str) -> SnapshotManifest | SegmentManifest:
    """Parse a manifest; raise FormatError for bad JSON, a missing field or a newer major version."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise FormatError(f"{what} is not a JSON object")
    check_version(raw.get("format_version"), what)
    try:
        if raw.get("kind") == "snapshot":
            return _load_snapshot(raw)
        if raw.get("kind") == "segment":
            return _load_segment(raw)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise FormatError(f"{what} is missing or has a malformed field: {exc}") from exc
    raise FormatError(f"{what} has unknown kind {raw.get('kind')!r}")


def _load_snapshot(raw: dict) -> SnapshotManifest:
    tables = tuple(
        TableImage(
            schema=t["schema"], name=t["name"],
            columns=tuple(Column(c["name"], c["type"]) for c in t["columns"]),
            primary_key=tuple(t["primary_key"]), rows=int(t["rows"]),
            chunks=tuple(Chunk(object=_ref(c["object"]), rows=int(c["rows"]),
                               first_key=c["first_key"], last_key=c["last_key"],
                               bounds=dict(c["bounds"])) for c in t["chunks"]),
        )
        for t in raw["tables"]
    )
    return SnapshotManifest(
        id=raw["id"], cut_at=datetime.fromisoformat(raw["cut_at"]), position=raw["position"],
        database=raw["database"], server_version=raw["server_version"],
        encryption_key_id=raw["encryption_key_id"], schema=_ref(raw["schema"]), tables=tables,
        format_version=raw["format_version"], continues=raw.get("continues"),
    )


def _load_segment(raw: dict) -> SegmentManifest:
    return SegmentManifest(
        id=raw["id"], cut_at=datetime.fromisoformat(raw["cut_at"]),
        from_position=raw["from_position"], to_position=raw["to_position"],
        changes=int(raw["changes"]), first_position=raw["first_position"],
        last_position=raw["last_position"],
        first_committed_at=_dt(raw["first_committed_at"]),
        last_committed_at=_dt(raw["last_committed_at"]),
        tables=tuple(raw["tables"]), encryption_key_id=raw["encryption_key_id"],
        object=_ref(raw["object"]), format_version=raw["format_version"],
        commit_time=raw.get("commit_time"),
        images=tuple(SegmentImage(table=i["table"],
                                  columns=tuple(Column(c["name"], c["type"]) for c in i["columns"]),
                                  rows=int(i["rows"]), object=_ref(i["object"]))
                     for i in raw.get("images") or ()),
    )


Manifest = SnapshotManifest | SegmentManifest


def encode_manifest(manifest: Manifest, object_key: str, key: Key | None) -> bytes:
    """The stored bytes of a manifest: its JSON, sealed for `object_key` when a key is set."""
    return codec.seal(dump(manifest), object_key, key)


def decode_manifest(data: bytes, object_key: str, key: Key | None, what: str) -> Manifest:
    """Inverse of encode_manifest. With a key, only a manifest sealed with it is accepted
    (DecryptionError names it otherwise); without one, a sealed manifest asks for the key."""
    if key is not None and not codec.is_sealed(data):
        version = _version_of(data)
        if version is not None and not version.startswith(f"{FORMAT_MAJOR}."):
            raise DecryptionError(
                f"{what} is an unauthenticated manifest of repository format {version}; with a key, this "
                f"vaxvault reads only format {FORMAT_MAJOR} (authenticated) repositories. Read it without "
                "VAXVAULT_BACKUP_ENCRYPTION_KEY if it was written unencrypted, or take a new full backup "
                "('vaxvault backup run --full') and prune the old one")
    return load(codec.open_sealed(data, object_key, key), what)


def _version_of(data: bytes) -> str | None:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return str(raw.get("format_version")) if isinstance(raw, dict) else None
