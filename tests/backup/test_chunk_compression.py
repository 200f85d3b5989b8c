"""A chunk is compressed in one call at its end, or streamed when it is large: the same rows, one
zstd frame, the same metadata either way, and the digest is of the stored bytes."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
import zstandard

from backup.capture.catalog import describe_tables
from backup.snapshot import copy_chunk, plan_chunks
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.file import FileRepository


@pytest.mark.parametrize("sealed", [False, True])
async def test_streamed_and_one_shot_chunks_hold_the_same_rows(seeded_database_url: str, tmp_path: Path,
                                                             sealed: bool) -> None:
    key = Key(os.urandom(32)) if sealed else None
    conn = await asyncpg.connect(seeded_database_url)
    try:
        [recipients] = await describe_tables(conn, names=("recipients",))
        [task] = await plan_chunks(conn, recipients, 1_000_000)
        expected = []
        await conn.copy_from_table("recipients", columns=[c.name for c in recipients.columns],
                                   output=lambda data: _append(expected, data))
        chunks = {}
        for mode, threshold in (("one shot", 1 << 30), ("streamed", 0)):
            spool = FileRepository(tmp_path / mode.replace(" ", "-"))
            chunk = await copy_chunk(conn, task, "20261201T000000000000Z", spool, key,
                                     one_shot_bytes=threshold)
            assert chunk is not None
            stored = spool.get(chunk.object.key)
            assert (chunk.object.size, chunk.object.sha256) == (len(stored), codec.sha256(stored))
            frame = codec.open_sealed(stored, chunk.object.key, key)
            # One frame: a reader that stops after the first frame still gets every row.
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            text = decompressor.decompress(frame)
            assert decompressor.eof and decompressor.unused_data == b""
            assert sorted(text.splitlines()) == sorted(b"".join(expected).splitlines())
            assert chunk.rows == len(text.splitlines()) > 300
            chunks[mode] = chunk
        one, streamed = chunks["one shot"], chunks["streamed"]
        assert (one.rows, one.first_key, one.last_key, one.bounds) == \
            (streamed.rows, streamed.first_key, streamed.last_key, streamed.bounds)
    finally:
        await conn.close()


async def _append(parts: list[bytes], data: bytes) -> None:
    parts.append(data)
