"""Object keys inside a repository, built and parsed by pure functions (see backup/FORMAT.md).

    snapshots/<id>/manifest.json              commit point of a full snapshot (written last)
    snapshots/<id>/schema.sql.zst             DDL to recreate the tables
    snapshots/<id>/tables/<table>/<seq>.copy.zst   one chunk of one table
    segments/<id>/changes.jsonl.zst           the changes of one incremental segment
    segments/<id>/tables/<table>.copy.zst     one table's changes as typed rows (format 2.1)
    segments/<id>/manifest.json               commit point of the segment (written last)

Ids are the UTC time of the cut, `YYYYMMDDTHHMMSSffffffZ`, so they sort in time order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from backup.errors import FormatError

SNAPSHOTS = "snapshots"
SEGMENTS = "segments"
MANIFEST = "manifest.json"
SCHEMA = "schema.sql.zst"
CHANGES = "changes.jsonl.zst"
CHUNK_SUFFIX = ".copy.zst"

_ID = re.compile(r"^\d{8}T\d{12}Z$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def format_id(at: datetime) -> str:
    """The id of a snapshot or segment cut at `at` (aware datetime)."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def parse_id(value: str) -> datetime:
    """Inverse of format_id; raise FormatError for anything else."""
    if not _ID.match(value):
        raise FormatError(f"{value!r} is not a backup id (expected YYYYMMDDTHHMMSSffffffZ)")
    return datetime.strptime(value, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def check_table_name(table: str) -> str:
    if not _TABLE.match(table):
        raise FormatError(f"table name {table!r} cannot be used in an object key")
    return table


def snapshot_prefix(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/"


def format_snapshot_manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/{MANIFEST}"


def format_schema_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/{SCHEMA}"


def format_chunk_key(snapshot_id: str, table: str, seq: int) -> str:
    return f"{SNAPSHOTS}/{snapshot_id}/tables/{check_table_name(table)}/{seq:06d}{CHUNK_SUFFIX}"


def segment_prefix(segment_id: str) -> str:
    return f"{SEGMENTS}/{segment_id}/"


def format_segment_manifest_key(segment_id: str) -> str:
    return f"{SEGMENTS}/{segment_id}/{MANIFEST}"


def format_segment_changes_key(segment_id: str) -> str:
    return f"{SEGMENTS}/{segment_id}/{CHANGES}"


def format_segment_image_key(segment_id: str, table: str) -> str:
    return f"{SEGMENTS}/{segment_id}/tables/{check_table_name(table)}{CHUNK_SUFFIX}"


@dataclass(frozen=True)
class ObjectKey:
    """What a key names: kind is snapshot or segment; part is manifest, schema, chunk, changes or
    image (a segment's typed rows of one table)."""

    kind: str
    id: str
    part: str
    table: str | None = None
    seq: int | None = None


def parse_key(key: str) -> ObjectKey:
    """Inverse of the format_*_key functions; raise FormatError for a key outside the layout."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] in (SNAPSHOTS, SEGMENTS):
        kind = "snapshot" if parts[0] == SNAPSHOTS else "segment"
        parse_id(parts[1])
        rest = parts[2:]
        if rest == [MANIFEST]:
            return ObjectKey(kind, parts[1], "manifest")
        if kind == "snapshot" and rest == [SCHEMA]:
            return ObjectKey(kind, parts[1], "schema")
        if kind == "segment" and rest == [CHANGES]:
            return ObjectKey(kind, parts[1], "changes")
        if kind == "segment" and len(rest) == 2 and rest[0] == "tables" and rest[1].endswith(CHUNK_SUFFIX):
            return ObjectKey(kind, parts[1], "image", check_table_name(rest[1][: -len(CHUNK_SUFFIX)]))
        if (kind == "snapshot" and len(rest) == 3 and rest[0] == "tables"
                and rest[2].endswith(CHUNK_SUFFIX)):
            seq = rest[2][: -len(CHUNK_SUFFIX)]
            if seq.isdigit() and len(seq) == 6:
                return ObjectKey(kind, parts[1], "chunk", check_table_name(rest[1]), int(seq))
    raise FormatError(f"{key!r} is not a vaxvault backup object key")
