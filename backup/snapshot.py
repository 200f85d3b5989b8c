"""Copying tables out of one exported snapshot: block-range chunks streamed through COPY and zstd.

A table is cut into ranges of heap blocks (a TID range scan reads each range sequentially, as a
plain COPY of the table would: no index walk, no sort) of about `chunk_rows` rows each, copied
by parallel workers, each in a REPEATABLE READ transaction on the same exported snapshot, so the
image is one consistent state. Only one compressed chunk per worker is ever in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import zstandard

from backup.capture.catalog import TableDef, quote_ident
from backup.storage import codec, keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import Chunk, ObjectRef, TableImage

OnObject = Callable[[ObjectRef], None]  # called once a chunk object is stored in the spool

Progress = Callable[[int, int], None]  # (rows done in this call, bytes stored)


@dataclass(frozen=True)
class ChunkTask:
    """Heap blocks [first_block, end_block) of `table`; the last chunk has no end, so rows in
    blocks added after planning (invisible in the snapshot, but the table may grow) are covered.
    `bounded`: the date columns whose [min, max] over the chunk its manifest records."""

    table: TableDef
    seq: int
    first_block: int
    end_block: int | None
    bounded: tuple[str, ...]


def _key_json(table: TableDef) -> str:
    return "jsonb_build_object(" + ", ".join(f"'{c}', {quote_ident(c)}" for c in table.primary_key) + ")"


def _key_columns(table: TableDef) -> str:
    return ", ".join(quote_ident(c) for c in table.primary_key)


def _range(task: ChunkTask) -> str:
    """SQL predicate selecting the chunk's blocks: a TID range scan (PostgreSQL 14+)."""
    predicate = f"ctid >= '({task.first_block},0)'::tid"
    if task.end_block is not None:
        predicate += f" AND ctid < '({task.end_block},0)'::tid"
    return predicate


# Key types whose min()/max() exist and order like the key: the chunk's first/last key come from
# the same aggregate as its date bounds. Other keys take the first/last row by key order instead.
MIN_MAX_KEY_TYPES = ("smallint", "integer", "bigint", "numeric", "text", "character varying", "date")
# At most this many tuples fit in one 8 KiB heap page (MaxHeapTuplesPerPage): a plan without
# usable statistics assumes it, so no chunk exceeds `chunk_rows` rows however stale they are.
MAX_TUPLES_PER_PAGE = 291
# A date column gets per-chunk bounds when the planner's statistics say its values follow the
# heap order (|pg_stats.correlation| at least this) or have nothing to say. A column whose values
# are scattered over the blocks (a birth date; in the bench every date column) has bounds that
# span nearly the whole table in every chunk: they prune no restore, and computing them was most
# of the chunk summary's cost (1M bench, backend CPU: 0.65 s with every date column, 0.26 s with
# the key alone, 0.16 s for the scan by itself; load 12). Without bounds a restore reads the
# chunk (a predicate on that column may match anywhere), so this choice never changes what a
# restore finds, only how much it reads.
BOUNDED_CORRELATION = 0.5


async def plan_chunks(conn: asyncpg.Connection, table: TableDef, chunk_rows: int) -> list[ChunkTask]:
    """The chunks of `table` in block order, about `chunk_rows` rows each (none for an empty table).

    Rows per block come from the planner's statistics (reltuples / relpages); without them, or
    when the table has more than doubled since, the densest possible page is assumed, which
    keeps chunks small (memory) at the cost of more of them. A stale estimate only changes chunk
    sizes, never which rows are copied."""
    stats = await conn.fetchrow(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int AS blocks, "
        "c.reltuples, c.relpages, c.relkind::text AS relkind FROM pg_class c WHERE c.oid = $1::regclass",
        table.qualified)
    if stats["relkind"] == "p":
        # A partitioned table has no blocks of its own and each partition numbers its own: one
        # open chunk (ctid >= (0,0) holds for every row of every partition).
        return [ChunkTask(table, 0, 0, None, table.date_columns)]
    blocks = int(stats["blocks"])
    if blocks == 0:
        return []
    per_block = float(MAX_TUPLES_PER_PAGE)
    # Statistics taken before the table more than doubled (a bulk load since) may say little about
    # its pages now: they are used only while the table is about the size they describe.
    current = stats["relpages"] > 0 and blocks <= 2 * stats["relpages"] and stats["reltuples"] > 0
    if current:
        per_block = min(per_block, max(1.0, stats["reltuples"] / stats["relpages"]))
    bounded = await _bounded_columns(conn, table) if current else table.date_columns
    step = max(1, int(chunk_rows / per_block))
    starts = range(0, blocks, step)
    return [ChunkTask(table, seq, start, start + step if start + step < blocks else None, bounded)
            for seq, start in enumerate(starts)]


async def _bounded_columns(conn: asyncpg.Connection, table: TableDef) -> tuple[str, ...]:
    """The date columns of `table` whose chunk bounds can prune a restore: those the statistics
    find in heap order (|correlation| >= BOUNDED_CORRELATION) and those they say nothing about."""
    if not table.date_columns:
        return ()
    rows = await conn.fetch("SELECT attname::text, correlation FROM pg_stats "
                            "WHERE schemaname = $1 AND tablename = $2 AND NOT inherited",
                            table.schema, table.name)
    correlation = {row["attname"]: row["correlation"] for row in rows}
    return tuple(column for column in table.date_columns
                 if correlation.get(column) is None or abs(correlation[column]) >= BOUNDED_CORRELATION)


def _summary_sql(task: ChunkTask) -> str:
    """One statement, one row: a text[] of the chunk's first and last key, then [min, max] of
    every bounded date column, all rendered like to_jsonb; read over the blocks the COPY just
    read (in shared buffers), in one aggregate when the key has min()/max()."""
    table = task.table
    source = f"FROM {table.qualified} WHERE {_range(task)}"
    types = {c.name: c.type for c in table.columns}
    extremes = [f"to_jsonb({fn}({quote_ident(column)}))::text"
                for column in task.bounded for fn in ("min", "max")]
    if len(table.primary_key) == 1 and types[table.primary_key[0]] in MIN_MAX_KEY_TYPES:
        name = table.primary_key[0].replace("'", "''")
        ends = [f"jsonb_build_object('{name}', {fn}({quote_ident(table.primary_key[0])}))::text"
                for fn in ("min", "max")]
        # count(*) keeps the planner from taking min/max of an indexed key from its index (a walk
        # of the whole index filtered by ctid: 4.3 s of backend CPU at 1M instead of 0.26 s).
        return f"SELECT ARRAY[{', '.join(ends + extremes)}, count(*)::text]::text[] {source}"
    ends = [f"(SELECT {_key_json(table)}::text {source} ORDER BY {_key_columns(table)} {direction} LIMIT 1)"
            for direction in ("ASC", "DESC")]
    dates = f"(SELECT ARRAY[{', '.join(extremes)}]::text[] {source})" if extremes else "ARRAY[]::text[]"
    return f"SELECT ARRAY[{', '.join(ends)}]::text[] || {dates}"


# A chunk whose COPY text stays under ONE_SHOT_BYTES is compressed in one call once its COPY has
# ended: zstd then knows the size and compresses the buffer in place, ~12% less CPU than
# streaming it in pieces (measured on the 1M bench's COPY text, 12 MiB chunks: 0.80 vs 0.91 s
# per 120 MiB, medians of 6). A larger chunk (wide rows) streams to the compressor in
# COMPRESS_BYTES pieces. With the next chunk's COPY overlapping the last one's compression, a
# worker holds at most about two chunks of raw bytes (2 x ONE_SHOT_BYTES).
ONE_SHOT_BYTES = 32 << 20
COMPRESS_BYTES = 1 << 20
# Chunks are compressed with level 3's parameters but smaller match tables and 6-byte minimum
# matches: COPY text (digits, dates, tabs) loses little from either, and the tables fit the
# caches. Measured on the 1M bench's COPY text (12 MiB pieces, min of 5, alternating, load ~15):
# doses 100 MB 0.52 s -> 26.27 MB vs level 3's 0.57 s -> 26.51 MB; recipients 83 MB 0.43 s ->
# 25.14 MB vs 0.67 s -> 26.69 MB: less CPU and fewer bytes. Any zstd decoder reads the frames
# (window 2 MiB, as level 3's).
CHUNK_ZSTD = zstandard.ZstdCompressionParameters.from_level(codec.ZSTD_LEVEL, min_match=6, hash_log=16,
                                                            chain_log=14)


def _seal(parts: list[bytes], object_key: str, key: Key | None) -> tuple[bytes, str]:
    """The finished object and its SHA-256, hashed once here while the bytes are in memory:
    the spool write and every later stage compare against this digest."""
    data = codec.seal(b"".join(parts), object_key, key)
    parts.clear()
    return data, codec.sha256(data)


async def copy_chunk(conn: asyncpg.Connection, task: ChunkTask, snapshot_id: str,
                     spool: FileRepository, key: Key | None,
                     one_shot_bytes: int = ONE_SHOT_BYTES) -> Chunk | None:
    """COPY one chunk into the spool; return its metadata (rows, key range, date bounds), or None
    when the range holds no row (nothing is stored). A chunk of more than `one_shot_bytes` of
    COPY text is compressed while it streams, a smaller one at its end (one zstd frame either way)."""
    stored = await _copy_chunk(conn, task, snapshot_id, spool, key, one_shot_bytes)
    return None if stored is None else await stored


async def _copy_chunk(conn: asyncpg.Connection, task: ChunkTask, snapshot_id: str,
                      spool: FileRepository, key: Key | None,
                      one_shot_bytes: int) -> asyncio.Future[Chunk] | None:
    """copy_chunk, returning once the connection is free: the chunk is still being compressed,
    sealed and written to the spool by a thread (the future resolves to its metadata once it is
    stored), so the connection can start its next COPY meanwhile.

    Compression runs in a worker thread (zstd releases the GIL), so while one chunk compresses
    the event loop keeps reading the other workers' COPY streams: the backends and the
    compressor use both cores instead of taking turns. The row count is COPY's own (its command
    tag), so the stream is never scanned for line ends.

    The key range and date bounds come from one aggregate over the chunk's blocks after the COPY,
    reading the pages the COPY just brought into shared buffers (no index, no second read from
    disk). Measured at 1M (doses and recipients, 2.77M rows): ~0.5 s backend CPU in all, against
    ~3 s for the COPY. Parsing the dates out of the COPY text in Python cost more than the COPY
    itself (3.3 s for doses alone: a regex over the lines, then min/max), so the aggregate stays.
    """
    table = task.table
    columns = ", ".join(quote_ident(c.name) for c in table.columns)
    compressor = zstandard.ZstdCompressor(compression_params=CHUNK_ZSTD)
    stream: zstandard.ZstdCompressionObj | None = None  # once the chunk outgrew ONE_SHOT_BYTES
    parts: list[bytes] = []
    pending: list[bytes] = []
    pending_bytes = 0
    # A streamed piece compresses while the next is read (one in flight: order kept).
    running: asyncio.Future[None] | None = None

    def compress(raw: bytes) -> None:
        assert stream is not None
        parts.append(stream.compress(raw))

    async def hand_off() -> None:
        nonlocal pending_bytes, running
        if running is not None:
            await running
        raw = b"".join(pending)
        pending.clear()
        pending_bytes = 0
        running = asyncio.ensure_future(asyncio.to_thread(compress, raw))

    async def sink(data: bytes) -> None:
        nonlocal pending_bytes, stream
        pending.append(data)
        pending_bytes += len(data)
        if stream is None and pending_bytes > one_shot_bytes:
            stream = compressor.compressobj()
        if stream is not None and pending_bytes >= COMPRESS_BYTES:
            await hand_off()

    try:
        status = await conn.copy_from_query(
            f"SELECT {columns} FROM {table.qualified} WHERE {_range(task)}", output=sink)
        if stream is not None and pending:
            await hand_off()
    finally:
        if running is not None:
            await running  # never leave a thread writing into `parts` behind
    rows = int(status.split()[-1])  # "COPY <rows>"
    if rows == 0:
        return None
    object_key = keys.format_chunk_key(snapshot_id, table.name, task.seq)

    def finish() -> tuple[int, str]:
        if stream is None:
            raw = b"".join(pending)
            pending.clear()
            parts.append(compressor.compress(raw))
        else:
            parts.append(stream.flush())
        data, digest = _seal(parts, object_key, key)
        spool.put(object_key, data)
        return len(data), digest

    # Compressing, sealing and storing the chunk (a thread) overlap the summary query and the
    # connection's next COPY.
    finished = asyncio.ensure_future(asyncio.to_thread(finish))
    try:
        summary = await conn.fetchval(_summary_sql(task))
    except BaseException:
        with contextlib.suppress(Exception):
            await finished  # the thread ends before the error propagates
        raise
    values = [json.loads(v) if v is not None else None for v in summary]
    bounds = {column: [values[2 + 2 * i], values[3 + 2 * i]] for i, column in enumerate(task.bounded)}

    async def stored() -> Chunk:
        size, digest = await finished
        return Chunk(object=ObjectRef(object_key, digest, size), rows=rows,
                     first_key=values[0], last_key=values[1], bounds=bounds)

    return asyncio.ensure_future(stored())


async def copy_tables(connections: list[asyncpg.Connection], tables: list[TableDef], snapshot_id: str,
                      spool: FileRepository, key: Key | None, chunk_rows: int,
                      progress: Progress | None = None,
                      on_object: OnObject | None = None) -> list[TableImage]:
    """Copy every table with the given connections (all in the same snapshot) working in parallel."""
    tasks: list[ChunkTask] = []
    for table in tables:
        tasks.extend(await plan_chunks(connections[0], table, chunk_rows))
    queue: asyncio.Queue[ChunkTask] = asyncio.Queue()
    for task in tasks:
        queue.put_nowait(task)
    done: dict[tuple[str, int], Chunk] = {}

    async def record(task: ChunkTask, copied: asyncio.Future[Chunk]) -> None:
        # Awaited by the worker, not a done-callback: an error from on_object or progress (or the
        # write) fails the worker and so the run, before any manifest claims the snapshot; a
        # callback's error would only reach the event loop's exception handler.
        chunk = await copied
        done[(task.table.name, task.seq)] = chunk
        if on_object:
            on_object(chunk.object)  # the upload reads the spool file, now there
        if progress:
            progress(chunk.rows, chunk.object.size)

    async def worker(conn: asyncpg.Connection) -> None:
        # A chunk is compressed, sealed and written to the spool (fsync: 5-50 ms on the bench
        # disk) while the worker's connection copies the next one; at most one per worker is in
        # flight (memory: one raw chunk being compressed, one arriving).
        writing: asyncio.Future[None] | None = None
        recording: asyncio.Future[None] | None = None
        try:
            while not queue.empty():
                task = queue.get_nowait()
                copied = await _copy_chunk(conn, task, snapshot_id, spool, key, ONE_SHOT_BYTES)
                recording = None if copied is None else asyncio.ensure_future(record(task, copied))
                if writing is not None:
                    # shielded: a cancelled worker must not cancel the write, whose thread would
                    # go on writing to the spool unawaited (the finally below waits for it)
                    await asyncio.shield(writing)
                writing, recording = recording, None
            if writing is not None:
                await asyncio.shield(writing)
        finally:
            # failing or cancelled: let every write in flight end before the error propagates
            left = [f for f in (writing, recording) if f is not None]
            if left:
                # shielded: cancelled again while waiting, the worker still must not return
                # before a write's thread has ended
                await asyncio.shield(asyncio.wait(left))
            for future in left:  # their errors are not this worker's to raise: marked as seen
                if future.done() and not future.cancelled():
                    future.exception()

    # A TaskGroup, not gather: when one worker fails the others are cancelled and awaited (each
    # lets its chunk's write end), so no thread still writes to the spool once the run has failed
    # and released its lock.
    try:
        async with asyncio.TaskGroup() as group:
            for conn in connections:
                group.create_task(worker(conn))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    images = []
    for table in tables:
        chunks = tuple(chunk for (name, _), chunk in sorted(done.items()) if name == table.name)
        images.append(TableImage(schema=table.schema, name=table.name, columns=table.columns,
                                 primary_key=table.primary_key, rows=sum(c.rows for c in chunks),
                                 chunks=chunks))
    return images
