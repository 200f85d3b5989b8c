"""Typed row images of a segment, one object per table (format 2.1, see FORMAT.md).

The segment's JSON lines carry every change whole (old and new images); restore needs only the
image after each change, typed. Loading 266,561 JSON lines into jsonb and populating a row from
each was most of a lost-record restore's reading time at 1M (after-T load ~6 s, populate in
classify ~2-4 s). So the cut also writes, per table, the rows restore needs in COPY text: it
turns each json image into the table's row type once, here, and every restore loads it with a
plain COPY. The change log itself is unchanged (capture and logical decoding write it as before).

An image is an optimisation, never the record: when the server cannot build one (the table is
gone, or a value no longer fits its type), the segment ships without it and restore reads the
JSON lines for that table.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from backup.capture.catalog import quote_ident
from backup.capture.triggers import SCHEMA, commit_time_sql
from backup.errors import FormatError
from backup.storage import keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import Column, SegmentImage
from backup.storage.object_writer import ObjectWriter

# The captured table and its columns as they are now (generated columns are never restored).
_TABLE = f"""
SELECT c.oid, n.nspname AS schema,
       ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS names,
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS types
FROM {SCHEMA}.captured t
JOIN pg_namespace n ON n.nspname = t.schema_name
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
WHERE t.table_name = $1
"""


_VISIBLE = "  AND pg_visible_in_snapshot(c.txid, $3::text::pg_snapshot)"


def _rows_sql(qualified: str, columns: Sequence[str], visible_at: bool = False) -> str:
    """The shipped changes of one table ($1: previous position, $2: table) as typed rows. A D
    carries only its key (`key`), a T nothing: populating NULL gives a row of NULLs.
    `visible_at`: only changes of transactions visible in snapshot $3 (a cut that drained the
    logical capture slot sees later transactions' changes too: they are the next segment's)."""
    picked = ", ".join(f"r.{quote_ident(c)}" for c in columns)
    return f"""
SELECT c.position, {commit_time_sql("c")} AS committed_at, c.op::text AS op, {picked}
FROM {SCHEMA}.changes c
LEFT JOIN LATERAL json_populate_record(NULL::{qualified}, coalesce(c.new, c.key)) r ON true
WHERE c.txid >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(c.txid, $1::text::pg_snapshot)
  AND c.table_name = $2
{_VISIBLE if visible_at else ""}
ORDER BY c.position
"""


async def write_images(conn: asyncpg.Connection, previous: str, segment_id: str, tables: Sequence[str],
                       spool: FileRepository, key: Key | None,
                       visible_at: str | None = None) -> tuple[SegmentImage, ...]:
    """Write the typed image of each of `tables` for the segment (previous, <conn's snapshot>]
    to the spool (only changes of transactions visible in snapshot `visible_at`, when given).
    `conn` is in the cut's transaction; each table's read runs in a savepoint,
    and a table whose image the server cannot build is left out (restore reads its JSON)."""
    images = []
    for table in tables:
        image = await _write_image(conn, previous, segment_id, table, spool, key, visible_at)
        if image is not None:
            images.append(image)
    return tuple(images)


async def _write_image(conn: asyncpg.Connection, previous: str, segment_id: str, table: str,
                       spool: FileRepository, key: Key | None, visible_at: str | None) -> SegmentImage | None:
    try:
        object_key = keys.format_segment_image_key(segment_id, table)
    except FormatError:
        return None  # a name an object key cannot hold: the JSON lines serve it
    found = await conn.fetchrow(_TABLE, table)
    if found is None:
        return None
    qualified = f"{quote_ident(found['schema'])}.{quote_ident(table)}"
    rows = 0
    try:
        async with conn.transaction(), ObjectWriter(spool, object_key, key) as writer:

            async def sink(data: bytes) -> None:
                nonlocal rows
                rows += data.count(b"\n")
                await writer.write(data)

            await conn.copy_from_query(_rows_sql(qualified, found["names"], visible_at is not None),
                                       previous, table, *([visible_at] if visible_at else []),
                                       output=sink, format="text")
            ref = await writer.finish()
    except asyncpg.PostgresError:
        return None
    columns = tuple(Column(n, t) for n, t in zip(found["names"], found["types"], strict=True))
    return SegmentImage(table, columns, rows, ref)
