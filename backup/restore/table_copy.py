"""One table of a snapshot into PostgreSQL with one COPY, its chunks streamed.

Each chunk is read, checked against its manifest's SHA-256 and opened (authenticated and
decrypted with the key) whole in a thread, a couple of chunks ahead of the one being sent; only
then is it decompressed, in pieces of a megabyte straight into the COPY. So no byte reaches
PostgreSQL from an object that failed its checks, and memory holds a few compressed chunks per
connection instead of whole decoded ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import asyncpg
import zstandard

from backup.errors import FormatError
from backup.storage import codec
from backup.storage.codec import Key
from backup.storage.manifest import Chunk, TableImage
from backup.storage.reader import read_object
from backup.storage.repository import Repository

# Chunks read and opened ahead of the one being sent: enough that PostgreSQL never waits for
# storage, few enough to bound memory (a chunk is a few MB compressed).
PREFETCH = 2
PIECE = 1 << 20


def open_chunk(repo: Repository, chunk: Chunk, key: Key | None) -> bytes:
    """The chunk's compressed bytes, checked and authenticated (ChecksumMismatch, DecryptionError)."""
    return codec.open_sealed(read_object(repo, chunk.object), chunk.object.key, key)


async def _pieces(repo: Repository, key: Key | None, image: TableImage,
                  pool: Executor) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    ahead: deque[tuple[Chunk, asyncio.Future[bytes]]] = deque()
    waiting = deque(image.chunks)
    try:
        while waiting or ahead:
            while waiting and len(ahead) <= PREFETCH:
                chunk = waiting.popleft()
                ahead.append((chunk, loop.run_in_executor(pool, open_chunk, repo, chunk, key)))
            chunk, future = ahead.popleft()
            opened = await future
            try:
                for piece in zstandard.ZstdDecompressor().read_to_iter(opened, write_size=PIECE):
                    yield piece
            except zstandard.ZstdError as exc:
                raise FormatError(f"{repo.url}/{chunk.object.key} is not valid zstd data: {exc}") from exc
    finally:
        for _, future in ahead:
            future.cancel()


async def copy_table(conn: asyncpg.Connection, repo: Repository, key: Key | None, image: TableImage,
                     pool: Executor) -> int:
    """COPY every chunk of `image` into its table (FREEZE: the caller's transaction must have
    created or truncated it); the rows loaded."""
    if not image.chunks:
        return 0
    status = await conn.copy_to_table(image.name, schema_name=image.schema, format="text", freeze=True,
                                      source=_pieces(repo, key, image, pool),
                                      columns=[c.name for c in image.columns])
    return int(status.split()[-1])
