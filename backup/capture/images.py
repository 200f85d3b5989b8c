"""Typed row images of a segment, one object per table (format 2.1, see FORMAT.md).

The segment's JSON lines carry every change whole (old and new images); restore needs only the
image after each change, typed. Loading 266,561 JSON lines into jsonb and populating a row from
each was most of a lost-record restore's reading time at 1M (after-T load ~6 s, populate in
classify ~2-4 s). So the cut also writes, per table, the rows restore needs in COPY text: it
reads each json image into the table's columns once, here, and every restore loads it with a
plain COPY into the typed columns. The change log itself is unchanged (capture and logical
decoding write it as before).

An image is an optimisation, never the record: when the server cannot build one (the table is
gone, or a value no longer fits its type), the segment ships without it and restore reads the
JSON lines for that table.

Parsing the json costs what it costs; typing each value and printing it again was a quarter of
the image's server CPU at 1M (1.90 s with json_populate_record, 1.39 s with every column read as
text; the lines take 0.86 s). A scalar's json text is already what its type reads (to_json wrote
it with the type's output function, or as an ISO date or a JSON number or boolean that the input
function takes), so such a column is read as text and the restore's COPY types it, with the same
input function on the same string the cut would have used. Columns whose json is not that text
(arrays, composites, json itself, domains, anything else) are still typed here.
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

# Type categories whose values to_json writes as their text (a JSON string of the output, or an
# ISO date/time, number or boolean the input function reads back): boolean, date/time, enum,
# network, numeric, string, timespan, bit string. Base and enum types only: a domain is typed here
# (its check runs at the cut, as before), and so is a type with a cast to json (to_json uses it).
_AS_TEXT = "'B', 'D', 'E', 'I', 'N', 'S', 'T', 'V'"
# The captured table and its columns as they are now (generated columns are never restored), and
# whether each column's json is read as text (see _AS_TEXT).
_TABLE = f"""
SELECT c.oid, n.nspname AS schema,
       ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS names,
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS types,
       ARRAY(SELECT y.typtype IN ('b', 'e') AND y.typcategory IN ({_AS_TEXT})
             AND NOT EXISTS (SELECT FROM pg_cast k WHERE k.castsource = y.oid
                             AND k.casttarget IN ('json'::regtype, 'jsonb'::regtype))
             FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) AS as_text
FROM {SCHEMA}.captured t
JOIN pg_namespace n ON n.nspname = t.schema_name
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
WHERE t.table_name = $1
"""


_VISIBLE = "  AND pg_visible_in_snapshot(c.txid, $3::text::pg_snapshot)"


def _rows_sql(columns: Sequence[tuple[str, str]], visible_at: bool = False) -> str:
    """The shipped changes of one table ($1: previous position, $2: table) as rows of `columns`
    (name, type read as: `text` or the column's type). A D carries only its key (`key`), a T
    nothing: reading NULL gives a row of NULLs. `visible_at`: only changes of transactions visible
    in snapshot $3 (a cut that drained the logical capture slot sees later transactions' changes
    too: they are the next segment's)."""
    picked = ", ".join(f"r.{quote_ident(name)}" for name, _ in columns)
    defined = ", ".join(f"{quote_ident(name)} {read_as}" for name, read_as in columns)
    return f"""
SELECT c.position, {commit_time_sql("c")} AS committed_at, c.op::text AS op, {picked}
FROM {SCHEMA}.changes c
LEFT JOIN LATERAL json_to_record(coalesce(c.new, c.key)) AS r({defined}) ON true
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
    read_as = [(name, "text" if as_text else type_)
               for name, type_, as_text in zip(found["names"], found["types"], found["as_text"], strict=True)]
    try:
        async with conn.transaction(), ObjectWriter(spool, object_key, key) as writer:
            status = await conn.copy_from_query(_rows_sql(read_as, visible_at is not None),
                                                previous, table, *([visible_at] if visible_at else []),
                                                output=writer.write, format="text")
            rows = int(status.split()[-1])
            ref = await writer.finish()
    except asyncpg.PostgresError:
        return None
    columns = tuple(Column(n, t) for n, t in zip(found["names"], found["types"], strict=True))
    return SegmentImage(table, columns, rows, ref)
