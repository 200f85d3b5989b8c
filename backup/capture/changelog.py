"""The live change log: cutting it into segments at a position, the watermark, and trimming.

A cut runs inside a REPEATABLE READ transaction whose snapshot is the new position; it ships the
changes whose transaction is visible there and not in the previous position (see FORMAT.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from backup.capture.images import write_images
from backup.capture.triggers import SCHEMA, commit_time_sql
from backup.errors import CaptureError
from backup.storage import keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import SegmentImage, SegmentManifest, encode_manifest
from backup.storage.object_writer import ObjectWriter

# The shipped changes: those whose transaction is visible at the new position and not at the
# previous one. Commit time when the server tracks it; else the capture clock (FORMAT.md).
_SHIPPED = f"""
FROM {SCHEMA}.changes c
WHERE txid >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(txid, $1::text::pg_snapshot)
"""
# Each change already in the segment's line format (one JSON object, see storage/segment.py),
# built by the server and sent by COPY: the client only compresses the bytes. The top-level
# fields are written compactly, as json.dumps(separators=(",", ":")) did: restore's source
# filters lines by the bytes '"table":"<name>"' before parsing them. The order comes from
# walking the primary key (see _ORDERED_SCAN), so no bound from the summary is needed and the
# two can run at once.
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
# Under logical capture the cut's own transaction drained the slot (capture/logical.py) and sees
# changes of transactions its snapshot does not: those are the next segment's. Under trigger
# capture the condition holds for every row the snapshot sees, so that path keeps the plain query.
_VISIBLE_AT_CUT = "  AND pg_visible_in_snapshot(txid, $2::text::pg_snapshot)\n"
_LINES_DRAINED = _LINES.replace("ORDER BY position", _VISIBLE_AT_CUT + "ORDER BY position")
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
# The summary groups by transaction first: a commit time is one lookup per transaction, not per
# change, and no sort of every change's table name (0.46 s -> 0.19 s of server CPU for the
# 266,561-change segment at 1M). commit_time_sql per group: its fallback, the capture clock, is
# taken at both ends of the group.
_COMMITTED = ("CASE WHEN current_setting('track_commit_timestamp')::boolean "
              "THEN pg_xact_commit_timestamp(c.txid::xid) END")
_SUMMARY = f"""
SELECT coalesce(sum(changes), 0)::bigint AS changes, min(first) AS first, max(last) AS last,
       array_agg(DISTINCT table_name) AS tables, min(earliest) AS earliest, max(latest) AS latest
FROM (SELECT c.table_name, count(*) AS changes, min(position) AS first, max(position) AS last,
             coalesce({_COMMITTED}, min(c.captured_at)) AS earliest,
             coalesce({_COMMITTED}, max(c.captured_at)) AS latest
      {_SHIPPED.strip()}
      {{visible}}GROUP BY c.txid, c.table_name) per_transaction
"""
_SUMMARY_DRAINED = _SUMMARY.format(visible=_VISIBLE_AT_CUT.strip() + "\n      ")
_SUMMARY = _SUMMARY.format(visible="")
# The planner settings for the line COPY, set for that statement only. The change log is filled
# and emptied between autovacuum's visits, so its statistics are always stale and the planner
# guesses; for 266,561 changes it guessed a bitmap scan, then a sort of every row image (200 MB
# spilled to disk) handed through parallel workers: 4.7 s, where the ordered walk of the primary
# key took 2.2 s (EXPLAIN ANALYZE on the 1M bench database). The log holds little besides what
# is being shipped: the runner trims it after every run whose stages all took the segment.
_ORDERED_SCAN = {"enable_sort": "off", "enable_bitmapscan": "off",
                 "max_parallel_workers_per_gather": "0", "jit": "off"}
# Bytes that never occur raw in a JSON line (JSON escapes control characters): COPY's CSV mode
# with them as delimiter and quote sends each line verbatim, one per row.
_DELIMITER = "\x02"
_QUOTE = "\x01"


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
    there (restore joins it to the segments by it); return how many went.

    The commit does not wait for its WAL to reach the disk: a trim lost in a crash leaves the
    rows and the older `trimmed` position in place, which is the state before it, and the next
    run trims them again; nothing else depends on it being durable."""
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        status = await conn.execute(
            f"DELETE FROM {SCHEMA}.changes WHERE txid < pg_snapshot_xmax($1::text::pg_snapshot) "
            "AND pg_visible_in_snapshot(txid, $1::text::pg_snapshot)", position)
        await conn.execute(f"UPDATE {SCHEMA}.state SET trimmed = $1", position)
    return int(status.split()[-1])


@asynccontextmanager
async def _planner(conn: asyncpg.Connection, settings: dict[str, str]) -> AsyncIterator[None]:
    """`settings` for the statements inside the block; the transaction's own values after it
    (a full run goes on to copy the tables in the same transaction)."""
    names = list(settings)
    saved = await conn.fetchrow("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
    set_all = "SELECT " + ", ".join(f"set_config('{n}', ${i}, true)" for i, n in enumerate(names, 1))
    await conn.execute(set_all, *settings.values())
    try:
        yield
    finally:
        await conn.execute(set_all, *saved)


async def _images(conn: asyncpg.Connection, previous: str, segment_id: str, summary: asyncpg.Record,
                  spool: FileRepository, key: Key | None,
                  visible_at: str | None = None) -> tuple[SegmentImage, ...]:
    if not summary["changes"]:
        return ()
    async with _planner(conn, _ORDERED_SCAN):
        return await write_images(conn, previous, segment_id, sorted(summary["tables"]), spool, key,
                                  visible_at)


async def _summary_and_images(conn: asyncpg.Connection, previous: str, segment_id: str, spool: FileRepository,
                              key: Key | None) -> tuple[asyncpg.Record, tuple[SegmentImage, ...]]:
    summary = await conn.fetchrow(_SUMMARY, previous)
    return summary, await _images(conn, previous, segment_id, summary, spool, key)


async def cut_segment(conn: asyncpg.Connection, previous: str, position: str, cut_at: datetime,
                      spool: FileRepository, key: Key | None,
                      beside: asyncpg.Connection | None = None,
                      drained: bool = False) -> SegmentManifest | None:
    """Write the segment (previous, position] to the spool and return its manifest, or None when
    there is nothing to ship. `conn` must be in the REPEATABLE READ transaction of `position`;
    `beside`, when given, in the same snapshot (SET TRANSACTION SNAPSHOT): the summary (count,
    bounds, tables) and the tables' typed images (backup/capture/images.py) are read there while
    `conn` streams the lines, on the other core.

    The payload streams from COPY through zstd into the spool: memory does not grow with the
    number of changes (with a key, the compressed object is held once to be sealed).
    `drained`: `conn` drained the capture slot (logical capture): only changes of transactions
    visible at `position` are shipped (lines and images), and `beside` must be None (it cannot
    see that drain)."""
    segment_id = keys.format_id(cut_at)
    lines, summary_sql = (_LINES_DRAINED, _SUMMARY_DRAINED) if drained else (_LINES, _SUMMARY)
    arguments = (previous, position) if drained else (previous,)
    counting: asyncio.Future[tuple[asyncpg.Record, tuple[SegmentImage, ...]]] | None = None
    if beside is None:
        summary = await conn.fetchrow(summary_sql, *arguments)
        if not summary["changes"]:
            return None
    else:
        counting = asyncio.ensure_future(_summary_and_images(beside, previous, segment_id, spool, key))
    object_key = keys.format_segment_changes_key(segment_id)
    try:
        async with ObjectWriter(spool, object_key, key) as writer:
            async with _planner(conn, _ORDERED_SCAN):
                # COPY's status counts the lines (counting newlines in Python took 0.1-0.26 s
                # of the client's CPU at 1M).
                status = await conn.copy_from_query(lines, *arguments, output=writer.write, format="csv",
                                                    delimiter=_DELIMITER, quote=_QUOTE)
            count = int(status.split()[-1])
            if counting is not None:
                summary, images = await counting
            if not summary["changes"] and not count:
                return None
            if count != summary["changes"]:
                # Both reads run in the cut's REPEATABLE READ snapshot, so this cannot differ
                # unless the caller broke that contract.
                raise CaptureError(f"segment {segment_id}: {count} changes read but "
                                   f"{summary['changes']} counted in the same snapshot; run the backup again")
            ref = await writer.finish()
        if counting is None:
            images = await _images(conn, previous, segment_id, summary, spool, key,
                                   position if drained else None)
    finally:
        if counting is not None and not counting.done():
            counting.cancel()  # the caller closes `beside`; its query must not outlive the run
            with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
                await counting
    tracked = await conn.fetchval("SELECT current_setting('track_commit_timestamp')::boolean")
    manifest = SegmentManifest(
        id=segment_id, cut_at=cut_at, from_position=previous, to_position=position, changes=count,
        first_position=summary["first"], last_position=summary["last"],
        first_committed_at=summary["earliest"], last_committed_at=summary["latest"],
        tables=tuple(sorted(summary["tables"])), encryption_key_id=key.id if key else None,
        object=ref, commit_time="commit" if tracked else "capture", images=images)
    manifest_key = keys.format_segment_manifest_key(segment_id)
    spool.put(manifest_key, encode_manifest(manifest, manifest_key, key))
    return manifest
