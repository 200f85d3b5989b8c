"""A segment's image reads scalar columns as their json text and leaves the typing to the
reader's COPY (backup/capture/images.py): for every kind of column, what restore loads from the
image must equal what it loads from the segment's JSON lines (differential, per change)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import asyncpg

from backup.capture.triggers import install
from backup.restore.changes import create_change_table, load_segments
from backup.storage.file import FileRepository
from tests.backup.test_segment_stream import TRICKY, _cut_after

_DDL = """
CREATE TYPE mood AS ENUM ('calm', 'tab\tbed', 'quo''te');
CREATE DOMAIN small_even AS integer CHECK (VALUE % 2 = 0 AND VALUE < 100);
CREATE TYPE pair AS (a integer, b text);
CREATE TABLE odd_types (
    id bigint PRIMARY KEY, t text, vc varchar(12), ch char(3), b boolean, i2 smallint, n numeric,
    f8 float8, ts timestamp, tstz timestamptz, d date, tm time, tmtz timetz, iv interval, m mood,
    se small_even, by bytea, u uuid, ip inet, bits bit(4), ints integer[], texts text[], j json,
    jb jsonb, p point, r int4range, pr pair, g integer GENERATED ALWAYS AS (id * 2) STORED
);
"""
_ROWS = [
    "(1, $1, 'x', 'ab', true, -32768, 'NaN', 'Infinity', '2026-01-01 10:00:00.123456', "
    "'2026-06-30 23:59:59.999999+05:30', '0044-03-15 BC', '24:00:00', '10:00:00-03', "
    "'1 year 2 mons -3 days 04:05:06.5', 'tab\tbed', 42, '\\x00ff5c0a', "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', B'1010', '{1,NULL,3}', "
    "'{\"a,b\",\"c\\\\\\\"d\",NULL}', '\"just a string\"', '\"also a string\"', '(1.5,-2)', '[3,7)', "
    "ROW(1, 'x,y')::pair)",
    "(2, '', NULL, NULL, false, 0, 1.50, -0.0, 'infinity', '-infinity', 'infinity', '00:00', NULL, "
    "'0', 'quo''te', 0, '', NULL, '10.0.0.1', B'0000', '{}', '{}', 'null', 'null', NULL, 'empty', "
    "ROW(NULL, NULL)::pair)",
    "(3, '\\N', 'a\\b', '\\\\', NULL, 7, 1e-30, 1e300, NULL, '2026-12-01 00:00:00+00', '2026-02-28', "
    "NULL, NULL, 'P1Y2M3DT4H5M6S', 'calm', -2, NULL, NULL, NULL, NULL, '{{1,2},{3,4}}', '{\"\"}', "
    "'{\"k\": [1, \"two\", null]}', '{\"k\": {\"n\": 1.0}}', NULL, NULL, NULL)",
]


async def test_images_load_like_the_json_lines_for_every_kind_of_column(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_DDL)
        await install(conn, ("odd_types",))
        previous = await conn.fetchval("SELECT pg_current_snapshot()::text")
        for row in _ROWS:
            await conn.execute(f"INSERT INTO odd_types VALUES {row}", *([TRICKY] if "$1" in row else []))
        await conn.execute("UPDATE odd_types SET t = t || 'é', n = n + 1 WHERE id <> 2")
        await conn.execute("DELETE FROM odd_types WHERE id = 2")
        await conn.execute("TRUNCATE odd_types")
        with tempfile.TemporaryDirectory() as spool_dir:
            spool = FileRepository(Path(spool_dir))
            segment, _ = await _cut_after(conn, previous, spool, None)
            assert segment is not None and segment.changes == 7
            image = segment.image("odd_types")
            assert image is not None and image.rows == 7
            assert "g" not in [c.name for c in image.columns]
            columns = [c.name for c in image.columns]
            lines_only = dataclasses.replace(segment, images=())
            async with conn.transaction():
                for name, source in (("from_image", segment), ("from_lines", lines_only)):
                    await create_change_table(conn, name, "odd_types", columns, ["id"])
                    added = await load_segments(conn, spool, None, [source], "odd_types", name,
                                                "odd_types", columns)
                    assert added == 7
                differ = await conn.fetch(
                    "SELECT i.vv_position, i::text AS image, l::text AS line FROM from_image i "
                    "FULL JOIN from_lines l USING (vv_position) WHERE i::text IS DISTINCT FROM l::text")
                assert differ == []
                ops = await conn.fetchval("SELECT array_agg(vv_op ORDER BY vv_position) FROM from_image")
                assert ops == ["I", "I", "I", "U", "U", "D", "T"]
                shown = await conn.fetchrow("SELECT t, jb, j::text AS j, ints, tstz FROM from_image "
                                            "WHERE id = 1 AND vv_op = 'I'")
                assert shown["t"] == TRICKY and shown["jb"] == '"also a string"'
                assert shown["j"] == '"just a string"' and shown["ints"] == [1, None, 3]
    finally:
        await conn.close()


async def test_a_value_that_no_longer_fits_outside_the_window_falls_back_to_the_json_lines(
        database_url: str) -> None:
    """A column narrowed after the cut: the image's COPY types every row before its WHERE drops
    those outside the window, so one old value that no longer fits would fail the load; the JSON
    lines type only the rows in the window, and the load reads them instead."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE narrowed (id bigint PRIMARY KEY, label varchar(40))")
        await install(conn, ("narrowed",))
        previous = await conn.fetchval("SELECT pg_current_snapshot()::text")
        await conn.execute("INSERT INTO narrowed VALUES (1, $1)", "far too long for ten")
        await conn.execute("DELETE FROM narrowed WHERE id = 1")
        after = await conn.fetchval("SELECT clock_timestamp()")
        await conn.execute("INSERT INTO narrowed VALUES (2, 'fits')")
        with tempfile.TemporaryDirectory() as spool_dir:
            spool = FileRepository(Path(spool_dir))
            segment, _ = await _cut_after(conn, previous, spool, None)
            assert segment is not None and segment.image("narrowed") is not None
            await conn.execute("ALTER TABLE narrowed ALTER COLUMN label TYPE varchar(10)")
            async with conn.transaction():
                await create_change_table(conn, "changes", "narrowed", ["id", "label"], ["id"])
                added = await load_segments(conn, spool, None, [segment], "narrowed", "changes",
                                            "narrowed", ["id", "label"], after=after)
                assert added == 1
                assert await conn.fetchval("SELECT label FROM changes") == "fits"
    finally:
        await conn.close()
