"""Changes of one table in a TEMP table, typed: restore never holds row images in Python.

A *change table* has the table's columns (typed, from a row type: the image after the change,
or only the key of a delete, NULL for a TRUNCATE) and `vv_position`, `vv_committed_at`, `vv_op`
(prefixed so no column of the table can collide); SQL does the rest.

Segments of format 2.1 carry each table's images as COPY text (backup/capture/images.py): they
are copied straight into the change table, no JSON parsed. Older segments, and a table whose
image the cut could not build, are read from the JSON lines: each line is parsed once, by COPY
into jsonb, and its image populated from the binary value (loading the lines as `json` or text
and extracting afterwards parses again per extraction: 1.3-1.8x as long, measured at 1M).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from backup.capture.triggers import commit_time_sql
from backup.restore.errors import RestorePlanError
from backup.restore.object_stream import decoded_pieces
from backup.restore.predicate_sql import quote_identifier
from backup.restore.source import segments_in_window
from backup.storage.codec import Key
from backup.storage.manifest import SegmentImage, SegmentManifest
from backup.storage.repository import Repository

# Bytes that never occur raw in a JSON line (JSON escapes control characters), so COPY's CSV mode
# with them as delimiter and quote takes each line verbatim.
_DELIMITER = "\x02"
_QUOTE = "\x01"


async def create_change_table(conn: asyncpg.Connection, name: str, row_type: str, columns: Sequence[str],
                              primary_key: Sequence[str]) -> None:
    """TEMP table `name` (dropped at commit) with `columns` of `row_type` (a quoted table), and
    `primary_key` among them."""
    names = ", ".join(quote_identifier(c) for c in columns)
    await conn.execute(f"CREATE TEMP TABLE {quote_identifier(name)} ON COMMIT DROP AS "
                       f"SELECT {names} FROM {row_type} WITH NO DATA")
    await conn.execute(f"ALTER TABLE {quote_identifier(name)} ADD COLUMN vv_position bigint PRIMARY KEY, "
                       "ADD COLUMN vv_committed_at timestamptz, ADD COLUMN vv_op text")


async def load_segments(conn: asyncpg.Connection, repo: Repository, key: Key | None,
                        segments: Sequence[SegmentManifest], table: str, into: str, row_type: str,
                        columns: Sequence[str], after: datetime | None = None,
                        until: datetime | None = None) -> int:
    """Copy the changes of `table` committed in (after, until] from `segments` into change table
    `into` (made by create_change_table with `columns` of `row_type`, and empty: segments never
    share a position); segments whose commit-time range lies outside are not read. Returns rows
    added. Raises RestorePlanError when two segments hold the same change position."""
    added = 0
    loaded: list[SegmentManifest] = []
    for segment in segments_in_window(segments, table, after, until):
        image = segment.image(table)
        try:
            copied = None if image is None else await _copy_image_or_none(
                conn, repo, key, image, into, columns, after, until)
            if copied is None:
                copied = await _load_lines(conn, repo, key, segment, table, into, row_type, columns,
                                           after, until)
            added += copied
        except asyncpg.UniqueViolationError as exc:
            raise _shared_position(exc, segment, loaded, table) from exc
        loaded.append(segment)
    return added


def _shared_position(exc: asyncpg.UniqueViolationError, segment: SegmentManifest,
                     loaded: Sequence[SegmentManifest], table: str) -> RestorePlanError:
    """The error for a change position that two segments (or one, twice) both hold. One capture
    history never ships a change twice, so it is refused rather than skipped: the two changes
    need not be the same, and picking either would restore rows no history held. (Loads are
    plain COPYs since format 2.1; proving the copies identical would cost a staging copy of
    every segment.)"""
    found = re.search(r"\(vv_position\)=\((\d+)\)", exc.detail or "")
    position = int(found.group(1)) if found else None
    others = [s for s in (*loaded, segment) if position is None or s.first_position is None
              or s.last_position is None or s.first_position <= position <= s.last_position]
    others = [s for s in others if s.id != segment.id] or [segment]
    what = f"change position {position}" if position is not None else "a change position"
    earlier = " or ".join(s.id for s in others)
    return RestorePlanError(
        f"segments {earlier} and {segment.id} both hold {what} of table {table}; one capture history "
        "never ships a change twice, so the repository mixes two chains (two databases, or one "
        "restored and re-initialised, backing up to the same place) or a segment was copied in "
        "again. Nothing was restored. Run 'vaxvault backup list' and 'vaxvault backup verify', "
        "move the segment that is not this database's out of the repository, then restore again")


def _window(after: datetime | None, until: datetime | None) -> str | None:
    """COPY's WHERE for a commit time in (after, until] (COPY takes no parameters). A naive
    time is UTC, as asyncpg takes it for the JSON path's parameters: written as text without an
    offset it would be read in the session's time zone instead."""
    bounds = ([f"vv_committed_at > '{_utc(after).isoformat()}'::timestamptz"] if after else []) + \
             ([f"vv_committed_at <= '{_utc(until).isoformat()}'::timestamptz"] if until else [])
    return " AND ".join(bounds) or None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def _copy_image_or_none(conn: asyncpg.Connection, repo: Repository, key: Key | None,
                              image: SegmentImage, into: str, columns: Sequence[str],
                              after: datetime | None, until: datetime | None) -> int | None:
    """_copy_image, or None when a value in the image no longer fits its column (a type narrowed
    since the cut): COPY types every row before its WHERE drops those outside the window, where
    the JSON lines type only the rows in it, so the caller reads the lines instead."""
    try:
        async with conn.transaction():
            return await _copy_image(conn, repo, key, image, into, columns, after, until)
    except asyncpg.DataError:
        return None


async def _copy_image(conn: asyncpg.Connection, repo: Repository, key: Key | None, image: SegmentImage,
                      into: str, columns: Sequence[str], after: datetime | None,
                      until: datetime | None) -> int:
    """COPY a segment's typed image of the table into the change table. A column the image has
    and the change table lacks (added to the table after the snapshot restore rebuilds from) goes
    through a staging table, as text, and is left there: the JSON path ignores it too."""
    fields = ["vv_position", "vv_committed_at", "vv_op", *(c.name for c in image.columns)]
    if {c.name for c in image.columns} <= set(columns):
        status = await conn.copy_to_table(into, source=decoded_pieces(repo, image.object, key),
                                          columns=fields, format="text", where=_window(after, until))
        return int(status.split()[-1])
    staging = quote_identifier(into + "_image")
    shared = [c.name for c in image.columns if c.name in set(columns)]
    names = ", ".join(quote_identifier(c) for c in ["vv_position", "vv_committed_at", "vv_op", *shared])
    extra = ", ".join(f"ADD COLUMN {quote_identifier(c.name)} text"
                      for c in image.columns if c.name not in shared)
    await conn.execute(f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {names} "
                       f"FROM {quote_identifier(into)} WITH NO DATA")
    await conn.execute(f"ALTER TABLE {staging} {extra}")
    await conn.copy_to_table(into + "_image", source=decoded_pieces(repo, image.object, key),
                             columns=fields, format="text", where=_window(after, until))
    status = await conn.execute(f"INSERT INTO {quote_identifier(into)} ({names}) "
                                f"SELECT {names} FROM {staging}")
    await conn.execute(f"DROP TABLE {staging}")
    return int(status.split()[-1])


async def _load_lines(conn: asyncpg.Connection, repo: Repository, key: Key | None, segment: SegmentManifest,
                      table: str, into: str, row_type: str, columns: Sequence[str], after: datetime | None,
                      until: datetime | None) -> int:
    """The table's changes from the segment's JSON lines (a segment before format 2.1)."""
    lines = quote_identifier(into + "_lines")
    names = ", ".join(quote_identifier(c) for c in columns)
    picked = ", ".join(f"r.{quote_identifier(c)}" for c in columns)
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {lines} (line jsonb) ON COMMIT DROP")
    await conn.copy_to_table(into + "_lines", source=decoded_pieces(repo, segment.object, key),
                             format="csv", delimiter=_DELIMITER, quote=_QUOTE)
    status = await conn.execute(
        f"INSERT INTO {quote_identifier(into)} ({names}, vv_position, vv_committed_at, vv_op) "
        f"SELECT {picked}, (line->>'position')::bigint, (line->>'committed_at')::timestamptz, line->>'op' "
        f"FROM {lines} LEFT JOIN LATERAL jsonb_populate_record(NULL::{row_type}, "
        "coalesce(nullif(line->'new', 'null'::jsonb), nullif(line->'key', 'null'::jsonb))) r ON true "
        "WHERE line->>'table' = $1 "
        "AND ($2::timestamptz IS NULL OR (line->>'committed_at')::timestamptz > $2) "
        "AND ($3::timestamptz IS NULL OR (line->>'committed_at')::timestamptz <= $3)", table, after, until)
    await conn.execute(f"TRUNCATE {lines}")
    return int(status.split()[-1])


async def load_live_log(conn: asyncpg.Connection, log: str, table: str, into: str, row_type: str,
                        columns: Sequence[str], not_in: str, after: datetime | None = None,
                        until: datetime | None = None) -> int:
    """Add the live change log's changes of `table` whose transaction is not visible at position
    `not_in` (the base snapshot's: older ones are in its image) and that committed in
    (after, until] to change table `into`, skipping positions a segment already put there.
    Returns rows added."""
    names = ", ".join(quote_identifier(c) for c in columns)
    picked = ", ".join(f"r.{quote_identifier(c)}" for c in columns)
    status = await conn.execute(
        f"INSERT INTO {quote_identifier(into)} ({names}, vv_position, vv_committed_at, vv_op) "
        f"SELECT {picked}, c.position, {commit_time_sql('c')}, c.op::text FROM {log} c "
        f"LEFT JOIN LATERAL json_populate_record(NULL::{row_type}, coalesce(c.new, c.key)) r ON true "
        "WHERE c.table_name = $1 AND NOT pg_visible_in_snapshot(c.txid, $2::text::pg_snapshot) "
        f"AND ($3::timestamptz IS NULL OR {commit_time_sql('c')} > $3) "
        f"AND ($4::timestamptz IS NULL OR {commit_time_sql('c')} <= $4) "
        "ON CONFLICT (vv_position) DO NOTHING", table, not_in, after, until)
    return int(status.split()[-1])


async def apply_changes(conn: asyncpg.Connection, changes: str, target: str, columns: Sequence[str],
                        primary_key: Sequence[str]) -> None:
    """Bring `target` (a quoted table) to the state after the changes in change table `changes`:
    the last TRUNCATE empties it, then the last change per key wins (delete, or upsert its image)."""
    table = quote_identifier(changes)
    keys = ", ".join(quote_identifier(c) for c in primary_key)
    truncated = await conn.fetchval(f"SELECT max(vv_position) FROM {table} WHERE vv_op = 'T'")
    if truncated is not None:
        await conn.execute(f"TRUNCATE {target}")
    last = (f"SELECT DISTINCT ON ({keys}) * FROM {table} WHERE vv_op <> 'T' "
            f"AND vv_position > {int(truncated or 0)} ORDER BY {keys}, vv_position DESC")
    match = " AND ".join(f"t.{quote_identifier(c)} = f.{quote_identifier(c)}" for c in primary_key)
    await conn.execute(f"DELETE FROM {target} t USING ({last}) f WHERE f.vv_op = 'D' AND {match}")
    names = ", ".join(quote_identifier(c) for c in columns)
    picked = ", ".join(f"f.{quote_identifier(c)}" for c in columns)
    updates = ", ".join(f"{quote_identifier(c)} = EXCLUDED.{quote_identifier(c)}"
                        for c in columns if c not in primary_key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    await conn.execute(
        f"INSERT INTO {target} ({names}) OVERRIDING SYSTEM VALUE SELECT {picked} FROM ({last}) f "
        f"WHERE f.vv_op IN ('I', 'U') ON CONFLICT ({keys}) {action}")
