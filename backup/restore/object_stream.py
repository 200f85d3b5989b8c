"""A stored chunk or segment handed to COPY in pieces, never decompressed whole.

The stored (compressed, maybe sealed) object is read and checked against its manifest's SHA-256
before a byte reaches PostgreSQL, as before; only its decompressed form, 5-10x larger (a
266,561-change segment is 14 MB stored, ~150 MB of lines), is streamed. So a restore's memory is
one stored object plus one piece, whatever the segment holds.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import zstandard

from backup.errors import FormatError
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.manifest import ObjectRef
from backup.storage.reader import read_object
from backup.storage.repository import Repository

# Decompressed bytes handed to COPY at a time.
PIECE_BYTES = 1 << 20


async def decoded_pieces(repo: Repository, ref: ObjectRef, key: Key | None) -> AsyncIterator[bytes]:
    """The object's plain bytes (COPY text of a chunk, JSON lines of a segment) in pieces of at most
    PIECE_BYTES, for asyncpg's copy_to_table(source=...). ChecksumMismatch before the first piece
    when the stored bytes differ from the manifest; FormatError when they are not zstd."""
    stored = codec.open_sealed(read_object(repo, ref), ref.key, key)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored))
    try:
        while piece := reader.read(PIECE_BYTES):
            yield piece
    except zstandard.ZstdError as exc:
        raise FormatError(f"{ref.key}: {codec.not_zstd(exc)}") from exc
    finally:
        reader.close()
