"""The live change log: cutting it into segments at a position, the watermark, and trimming.

A cut runs inside a REPEATABLE READ transaction whose snapshot is the new position; it ships the
changes whose transaction is visible there and not in the previous position (see FORMAT.md).
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
import zstandard

from backup.capture.triggers import SCHEMA, commit_time_sql
from backup.errors import CaptureError
from backup.storage import codec, keys
from backup.storage.change import Change, Op
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef, SegmentManifest, encode_manifest
from backup.storage.segment import encode_changes

# Commit time when the server tracks it; else the capture clock, a lower bound (FORMAT.md).
_SINCE = f"""
SELECT position, txid::text AS txid,
       {commit_time_sql("c")} AS committed_at,
       table_name, op, key::text AS key, old::text AS old, new::text AS new
FROM {SCHEMA}.changes c
WHERE txid >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(txid, $1::text::pg_snapshot)
ORDER BY position
"""
FETCH_ROWS = 2000


async def read_watermark(conn: asyncpg.Connection) -> tuple[str, str | None]:
    """(position, id of the segment that reached it); CaptureError when capture is not installed."""
    try:
        row = await conn.fetchrow(f"SELECT watermark, segment_id FROM {SCHEMA}.state")
    except asyncpg.UndefinedTableError as exc:
        raise CaptureError("change capture is not installed in this database; "
                           "run 'vaxvault backup init'") from exc
    if row is None:
        raise CaptureError(f"{SCHEMA}.state is empty; run 'vaxvault backup init' again")
    return row["watermark"], row["segment_id"]


async def set_watermark(conn: asyncpg.Connection, position: str, segment_id: str) -> None:
    await conn.execute(f"UPDATE {SCHEMA}.state SET watermark = $1, segment_id = $2, updated_at = now()",
                       position, segment_id)


async def trim(conn: asyncpg.Connection, position: str) -> int:
    """Delete the live changes already shipped up to `position` and record that the log now starts
    there (restore joins it to the segments by it); return how many went."""
    async with conn.transaction():
        status = await conn.execute(
            f"DELETE FROM {SCHEMA}.changes WHERE txid < pg_snapshot_xmax($1::text::pg_snapshot) "
            "AND pg_visible_in_snapshot(txid, $1::text::pg_snapshot)", position)
        await conn.execute(f"UPDATE {SCHEMA}.state SET trimmed = $1", position)
    return int(status.split()[-1])


def _change(row: asyncpg.Record) -> Change:
    return Change(
        position=row["position"], txid=int(row["txid"]), committed_at=row["committed_at"],
        table=row["table_name"], op=Op(row["op"].decode() if isinstance(row["op"], bytes) else row["op"]),
        key=json.loads(row["key"]) if row["key"] else None,
        old=json.loads(row["old"]) if row["old"] else None,
        new=json.loads(row["new"]) if row["new"] else None)


async def cut_segment(conn: asyncpg.Connection, previous: str, position: str, cut_at: datetime,
                      spool: FileRepository, key: Key | None) -> SegmentManifest | None:
    """Write the segment (previous, position] to the spool and return its manifest, or None when
    there is nothing to ship. `conn` must be in the REPEATABLE READ transaction of `position`."""
    segment_id = keys.format_id(cut_at)
    compressor = zstandard.ZstdCompressor(level=codec.ZSTD_LEVEL).compressobj()
    parts: list[bytes] = []
    count, first, last = 0, None, None
    tables: set[str] = set()
    earliest: datetime | None = None
    latest: datetime | None = None
    async for row in conn.cursor(_SINCE, previous, prefetch=FETCH_ROWS):
        change = _change(row)
        parts.append(compressor.compress(encode_changes([change])))
        count += 1
        first = first or change
        last = change
        tables.add(change.table)
        earliest = min(earliest or change.committed_at, change.committed_at)
        latest = max(latest or change.committed_at, change.committed_at)
    if count == 0 or first is None or last is None:
        return None
    tracked = await conn.fetchval("SELECT current_setting('track_commit_timestamp')::boolean")
    parts.append(compressor.flush())
    object_key = keys.format_segment_changes_key(segment_id)
    data = codec.seal(b"".join(parts), object_key, key)
    spool.put(object_key, data)
    manifest = SegmentManifest(
        id=segment_id, cut_at=cut_at, from_position=previous, to_position=position, changes=count,
        first_position=first.position, last_position=last.position,
        first_committed_at=earliest, last_committed_at=latest,
        tables=tuple(sorted(tables)), encryption_key_id=key.id if key else None,
        object=ObjectRef(object_key, codec.sha256(data), len(data)),
        commit_time="commit" if tracked else "capture")
    manifest_key = keys.format_segment_manifest_key(segment_id)
    spool.put(manifest_key, encode_manifest(manifest, manifest_key, key))
    return manifest
