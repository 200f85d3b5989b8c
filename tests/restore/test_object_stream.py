"""A chunk or segment reaches COPY in bounded pieces that add up to the stored object's content,
and a corrupted object is refused before any piece is handed out."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import ChecksumMismatch, DecryptionError
from backup.restore.object_stream import PIECE_BYTES, decoded_pieces
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef

KEY = Key(b"k" * 32)


def _stored(root: Path, content: bytes, key: Key | None) -> tuple[FileRepository, ObjectRef]:
    repo = FileRepository(root)
    data = codec.encode(content, "chunks/x", key)
    repo.put("chunks/x", data)
    return repo, ObjectRef("chunks/x", codec.sha256(data), len(data))


def _pieces(repo: FileRepository, ref: ObjectRef, key: Key | None) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [piece async for piece in decoded_pieces(repo, ref, key)]
    return asyncio.run(collect())


@settings(max_examples=20, deadline=None)
@given(size=st.integers(0, 3 * PIECE_BYTES + 7), sealed=st.booleans())
def test_pieces_are_bounded_and_add_up_to_the_content(tmp_path_factory: pytest.TempPathFactory,
                                                      size: int, sealed: bool) -> None:
    # Half compressible, half random: pieces are cut from the decompressed stream, not the input.
    content = (b"0123456789\n" * size)[: size // 2] + os.urandom(size - size // 2)
    key = KEY if sealed else None
    repo, ref = _stored(tmp_path_factory.mktemp("repo"), content, key)
    pieces = _pieces(repo, ref, key)
    assert b"".join(pieces) == content
    assert all(0 < len(piece) <= PIECE_BYTES for piece in pieces)


def test_a_corrupted_object_is_refused_before_the_first_piece(tmp_path: Path) -> None:
    repo, ref = _stored(tmp_path, b"1\tAda\n" * 1000, None)
    stored = tmp_path / "chunks" / "x"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    handed: list[bytes] = []

    async def collect() -> None:
        async for piece in decoded_pieces(repo, ref, None):
            handed.append(piece)
    with pytest.raises(ChecksumMismatch):
        asyncio.run(collect())
    assert handed == []


def test_a_sealed_object_needs_its_key(tmp_path: Path) -> None:
    repo, ref = _stored(tmp_path, b"secret rows\n", KEY)
    with pytest.raises(DecryptionError):
        _pieces(repo, ref, None)
