"""Segments streamed from COPY through zstd into the spool: every byte of every row image arrives
as PostgreSQL holds it (differential against the table itself), sealed or not; a half-written
object is never stored; a change log written by earlier versions (jsonb images) is converted."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import asyncpg
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.capture import changelog
from backup.capture.triggers import SCHEMA, install
from backup.storage import codec, reader
from backup.storage.change import Op
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.object_writer import PIECE_BYTES, ObjectWriter

# Text PostgreSQL can hold (no NUL, no lone surrogates), weighted towards what the COPY line
# format must carry verbatim: its delimiter and quote bytes, backslashes, quotes, newlines,
# tabs, commas, COPY's end marker, and characters outside ASCII.
TRICKY = "\x01\x02\\\"'\n\r\t,.;{}:[]ñ€😀"
TEXT = st.text(alphabet=st.one_of(st.sampled_from(TRICKY),
                                  st.characters(codec="utf-8", exclude_characters="\x00")),
               min_size=1, max_size=64)


async def _cut_after(conn: asyncpg.Connection, previous: str, spool: FileRepository,
                     key: Key | None) -> list:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cut = await conn.fetchrow("SELECT pg_current_snapshot()::text AS position, clock_timestamp() AS at")
        manifest = await changelog.cut_segment(conn, previous, cut["position"], cut["at"], spool, key)
    assert manifest is not None
    assert not list(spool.root.glob("*.partial"))  # the stream's temporary file is gone
    return [manifest, reader.read_changes(spool, manifest, key)]


async def _ship_lots(url: str, lots: list[str], key: Key | None) -> None:
    conn = await asyncpg.connect(url)
    try:
        await install(conn, ("doses",))
        previous = await conn.fetchval("SELECT pg_current_snapshot()::text")
        ids = [int(r["id"]) for r in await conn.fetch("SELECT id FROM doses ORDER BY id LIMIT $1", len(lots))]
        before = {i: json.loads(await conn.fetchval("SELECT to_json(d)::text FROM doses d WHERE id = $1", i))
                  for i in ids}
        for dose_id, lot in zip(ids, lots, strict=True):
            await conn.execute("UPDATE doses SET lot_number = $2 WHERE id = $1", dose_id, lot)
        after = {i: json.loads(await conn.fetchval("SELECT to_json(d)::text FROM doses d WHERE id = $1", i))
                 for i in ids}
        with tempfile.TemporaryDirectory() as spool_dir:
            manifest, changes = await _cut_after(conn, previous, FileRepository(Path(spool_dir)), key)
    finally:
        await conn.close()
    assert manifest.changes == len(changes) == len(lots)
    assert [c.position for c in changes] == sorted(c.position for c in changes)
    assert [(c.op, c.key) for c in changes] == [(Op.UPDATE, {"id": i}) for i in ids]
    assert [c.old for c in changes] == [before[i] for i in ids]
    assert [c.new for c in changes] == [after[i] for i in ids]
    assert [c.new["lot_number"] for c in changes if c.new] == lots


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lots=st.lists(TEXT, min_size=1, max_size=6), sealed=st.booleans())
def test_every_row_image_arrives_as_postgresql_holds_it(seeded_database_url: str, lots: list[str],
                                                        sealed: bool) -> None:
    asyncio.run(_ship_lots(seeded_database_url, lots, Key(os.urandom(32)) if sealed else None))


async def test_a_segment_larger_than_many_pieces_streams_through(seeded_database_url: str,
                                                                 tmp_path: Path) -> None:
    """Thousands of changes (several MB of lines: many compression pieces in flight) in order."""
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        previous = await conn.fetchval("SELECT pg_current_snapshot()::text")
        for round_number in range(12):
            await conn.execute("UPDATE doses SET lot_number = $1 || '-' || id || repeat('x', 40)",
                               f"R{round_number}")
        doses = await conn.fetchval("SELECT count(*) FROM doses")
        manifest, changes = await _cut_after(conn, previous, FileRepository(tmp_path), None)
    finally:
        await conn.close()
    raw = codec.decompress((tmp_path / manifest.object.key).read_bytes())
    assert len(raw) > 3 * PIECE_BYTES
    assert manifest.changes == len(changes) == 12 * doses
    first = changes[0].position
    assert [c.position for c in changes] == list(range(first, first + len(changes)))
    assert changes[-1].new is not None and changes[-1].new["lot_number"].startswith("R11-")


async def test_a_writer_that_fails_midway_stores_nothing(tmp_path: Path) -> None:
    spool = FileRepository(tmp_path)
    with pytest.raises(RuntimeError, match="source broke"):
        async with ObjectWriter(spool, "segments/x/changes.jsonl.zst", None) as writer:
            await writer.write(os.urandom(PIECE_BYTES + 10))  # a piece is compressing now
            raise RuntimeError("source broke")
    assert list(tmp_path.rglob("*")) == []


async def test_a_written_object_matches_its_reference(tmp_path: Path) -> None:
    spool = FileRepository(tmp_path)
    payload = b"".join(os.urandom(1000) * 50 for _ in range(100))  # ~5 MB, compressible
    async with ObjectWriter(spool, "segments/y/changes.jsonl.zst", None) as writer:
        for start in range(0, len(payload), 70_000):
            await writer.write(payload[start:start + 70_000])
        ref = await writer.finish()
    stored = spool.get(ref.key)
    assert (ref.size, ref.sha256) == (len(stored), codec.sha256(stored))
    # One zstd frame: readers decode the first frame only.
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == payload
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["changes.jsonl.zst"]


async def test_a_log_of_jsonb_images_from_earlier_versions_is_converted_and_kept(
        seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        await conn.execute(f"ALTER TABLE {SCHEMA}.changes "
                           "ALTER COLUMN key TYPE jsonb USING key::jsonb, "
                           "ALTER COLUMN old TYPE jsonb USING old::jsonb, "
                           "ALTER COLUMN new TYPE jsonb USING new::jsonb")
        await conn.execute("UPDATE doses SET lot_number = 'OLD-FORMAT' WHERE id = 1")
        await install(conn, ("doses",))
        await conn.execute("UPDATE doses SET lot_number = 'NEW-FORMAT' WHERE id = 1")
        types = {r["attname"]: r["t"] for r in await conn.fetch(
            "SELECT attname, atttypid::regtype::text AS t FROM pg_attribute "
            f"WHERE attrelid = '{SCHEMA}.changes'::regclass AND attname IN ('key', 'old', 'new')")}
        lots = [r["lot"] for r in await conn.fetch(
            f"SELECT new ->> 'lot_number' AS lot FROM {SCHEMA}.changes ORDER BY position")]
    finally:
        await conn.close()
    assert types == {"key": "json", "old": "json", "new": "json"}
    assert lots == ["OLD-FORMAT", "NEW-FORMAT"]
