"""The live change log: cutting it into segments at a position, the watermark, and trimming.

A cut runs inside a REPEATABLE READ transaction whose snapshot is the new position; it ships the
changes whose transaction is visible there and not in the previous position (see FORMAT.md).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import zstandard

from backup.capture.triggers import SCHEMA, commit_time_sql
from backup.errors import CaptureError
from backup.storage import codec, keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef, SegmentManifest, encode_manifest

# The shipped changes: those whose transaction is visible at the new position and not at the
# previous one. Commit time when the server tracks it; else the capture clock (FORMAT.md).
_SHIPPED = f"""
FROM {SCHEMA}.changes c
WHERE txid >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(txid, $1::text::pg_snapshot)
"""
# Each change already in the segment's line format (one JSON object, see storage/segment.py),
# built by the server: the client only joins lines and compresses them. The top-level fields
# are written compactly, as json.dumps(separators=(",", ":")) did: restore's source filters
# lines by the bytes '"table":"<name>"' before parsing them. Parsing and
# re-serialising every row image in Python made a 266,561-change segment take minutes.
_LINE = f"""
'{{"position":' || position || ',"txid":' || txid::text
       || ',"committed_at":' || to_json({commit_time_sql("c")})::text
       || ',"table":' || to_json(table_name)::text || ',"op":"' || op::text
       || '","key":' || coalesce(key::text, 'null') || ',"old":' || coalesce(old::text, 'null')
       || ',"new":' || coalesce(new::text, 'null') || '}}'
"""
_LINES = f"""
SELECT {_LINE} AS line
{_SHIPPED}
ORDER BY position
"""
# Every change of one table still in the live log (shipped or not: trimming keeps some shipped
# ones), in the segment line format, committed in (after, until]; for finding loss before the
# next incremental has shipped it.
LIVE_LINES = f"""
SELECT {_LINE} AS line
FROM {SCHEMA}.changes c
WHERE table_name = $1
  AND ($2::timestamptz IS NULL OR {commit_time_sql("c")} > $2)
  AND ($3::timestamptz IS NULL OR {commit_time_sql("c")} <= $3)
ORDER BY position
"""
_SUMMARY = f"""
SELECT count(*) AS changes, min(position) AS first, max(position) AS last,
       array_agg(DISTINCT table_name) AS tables,
       min({commit_time_sql("c")}) AS earliest, max({commit_time_sql("c")}) AS latest
{_SHIPPED}
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


async def cut_segment(conn: asyncpg.Connection, previous: str, position: str, cut_at: datetime,
                      spool: FileRepository, key: Key | None) -> SegmentManifest | None:
    """Write the segment (previous, position] to the spool and return its manifest, or None when
    there is nothing to ship. `conn` must be in the REPEATABLE READ transaction of `position`."""
    summary = await conn.fetchrow(_SUMMARY, previous)
    if not summary["changes"]:
        return None
    segment_id = keys.format_id(cut_at)
    compressor = zstandard.ZstdCompressor(level=codec.ZSTD_LEVEL).compressobj()
    parts: list[bytes] = []
    batch: list[str] = []
    count = 0
    async for row in conn.cursor(_LINES, previous, prefetch=FETCH_ROWS):
        batch.append(row["line"])
        count += 1
        if len(batch) == FETCH_ROWS:
            parts.append(compressor.compress(("\n".join(batch) + "\n").encode()))
            batch.clear()
    if batch:
        parts.append(compressor.compress(("\n".join(batch) + "\n").encode()))
    if count != summary["changes"]:
        # Both reads run in the cut's REPEATABLE READ snapshot, so this cannot differ unless
        # the caller broke that contract.
        raise CaptureError(f"segment {segment_id}: {count} changes read but {summary['changes']} "
                           "counted in the same snapshot; run the backup again")
    tracked = await conn.fetchval("SELECT current_setting('track_commit_timestamp')::boolean")
    parts.append(compressor.flush())
    object_key = keys.format_segment_changes_key(segment_id)
    data = codec.seal(b"".join(parts), object_key, key)
    spool.put(object_key, data)
    manifest = SegmentManifest(
        id=segment_id, cut_at=cut_at, from_position=previous, to_position=position, changes=count,
        first_position=summary["first"], last_position=summary["last"],
        first_committed_at=summary["earliest"], last_committed_at=summary["latest"],
        tables=tuple(sorted(summary["tables"])), encryption_key_id=key.id if key else None,
        object=ObjectRef(object_key, codec.sha256(data), len(data)),
        commit_time="commit" if tracked else "capture")
    manifest_key = keys.format_segment_manifest_key(segment_id)
    spool.put(manifest_key, encode_manifest(manifest, manifest_key, key))
    return manifest
