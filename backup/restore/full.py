"""Disaster recovery, the data half: every table of the repository as at T, loaded into a schema
the caller has already built.

Nothing read from the repository is executed as SQL: the caller builds the schema with its own
code (vaxvault runs its migrations on the empty target) and this module only loads rows. It
checks that the schema can hold the snapshot, empties the tables (migrations insert reference
rows the snapshot holds too), sets keys, indexes and triggers aside, COPYs the chunks (fetched
and decoded ahead in threads while PostgreSQL loads), checks every count against the manifest,
rebuilds the primary keys, replays the segments' changes up to T, builds the rest back and
moves identity sequences past the restored rows. It runs in the caller's transaction.
Statistics are left to autovacuum, which analyzes the loaded tables within its first round,
rather than holding the restore (and the API's readiness) for them.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup.restore.asof import LiveTable, replay
from backup.restore.bulk_load import build_back_primary_keys, build_back_rest, set_aside
from backup.restore.errors import RestoreError, RestorePlanError
from backup.restore.predicate_sql import quote_identifier
from backup.restore.source import History, choose
from backup.storage.codec import Key
from backup.storage.manifest import Chunk, SegmentManifest, SnapshotManifest, TableImage
from backup.storage.reader import CopyRow, iter_chunk_rows, list_segments, list_snapshots, read_chunk
from backup.storage.repository import Repository

# Chunks fetched, checked and decoded ahead of the one PostgreSQL is loading: enough to keep
# both cores busy (one decoding, one in COPY), few enough to bound memory to a few chunks.
PREFETCH = 2


@dataclass(frozen=True)
class Reach:
    """How far the repository's history goes: the newest snapshot and its unbroken chain."""

    snapshot_id: str
    reaches: datetime              # the last cut: changes committed after it were never shipped
    segments: int                  # segments in the chain after the snapshot
    broken_after: datetime | None  # set when later segments exist that do not continue the chain


@dataclass(frozen=True)
class FullPlan:
    as_of: datetime
    history: History
    reach: Reach


@dataclass(frozen=True)
class TableRestore:
    table: str
    snapshot_rows: int
    loaded_rows: int
    changes_replayed: int
    rows_at_t: int


@dataclass(frozen=True)
class FullRestoreReport:
    as_of: datetime
    snapshot_id: str
    segments: int
    tables: tuple[TableRestore, ...]
    set_aside: int                 # keys and indexes dropped for the load and built back
    seconds: float


def reach_of(snapshots: Sequence[SnapshotManifest], segments: Sequence[SegmentManifest]) -> Reach:
    """The last instant the repository can restore to (pure). RestorePlanError when it has no snapshot."""
    if not snapshots:
        raise RestorePlanError("the repository holds no snapshot, so nothing can be restored; check "
                               "VAXVAULT_BACKUP_URL and run 'vaxvault backup list'")
    newest = max(snapshots, key=lambda s: s.cut_at)
    chain = choose(snapshots, segments, newest.cut_at)
    reaches = chain.segments[-1].cut_at if chain.segments else newest.cut_at
    return Reach(newest.id, reaches, len(chain.segments), chain.gap_after)


def plan_full(repo: Repository, key: Key | None, as_of: datetime | None) -> FullPlan:
    """The snapshot and segments for `as_of` (None: as far as the history reaches).

    Raises RestorePlanError for a T later than the history reaches (changes after the last cut
    were never shipped), earlier than every snapshot, or behind a missing segment.
    """
    snapshots, segments = list_snapshots(repo, key), list_segments(repo, key)
    reach = reach_of(snapshots, segments)
    chosen = reach.reaches if as_of is None else as_of
    if chosen > reach.reaches:
        raise RestorePlanError(
            f"--as-of {chosen.isoformat()} is later than the history reaches ({reach.reaches.isoformat()}, "
            "the last cut shipped to the repository); changes committed after it were never shipped and "
            f"are lost with the database; choose --as-of {reach.reaches.isoformat()} or earlier "
            "(or --as-of latest)")
    return FullPlan(chosen, choose(snapshots, segments, chosen), reach)


def snapshot_rows(repo: Repository, key: Key | None, snapshot: SnapshotManifest, table: str) -> list[CopyRow]:
    """Every row of a (small) table of the snapshot, as column -> COPY text value.

    Raises FormatError when the snapshot has no such table.
    """
    image = snapshot.table(table)
    return [row for chunk in image.chunks for row in iter_chunk_rows(repo, image, chunk, key)]


_USER_TABLES = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1
"""


async def ensure_empty(conn: asyncpg.Connection) -> None:
    """RestoreError unless the database has no table at all (a full restore never merges)."""
    existing = [row[0] for row in await conn.fetch(_USER_TABLES)]
    if existing:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise RestoreError(f"target database is not empty (it has {shown}); give the URL of an "
                           "empty database (CREATE DATABASE ...)")


_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attgenerated = ''
"""


async def _check_schema(conn: asyncpg.Connection, snapshot: SnapshotManifest) -> list[LiveTable]:
    """The target's tables for the snapshot's images; RestorePlanError listing every difference."""
    tables, problems = [], []
    for image in snapshot.tables:
        qualified = f"{quote_identifier(image.schema)}.{quote_identifier(image.name)}"
        types = {row["name"]: row["type"] for row in await conn.fetch(_COLUMNS, qualified)}
        if not types:
            problems.append(f"table {image.schema}.{image.name} is missing")
            continue
        for column in image.columns:
            if column.name not in types:
                problems.append(f"{image.name}.{column.name} is missing")
            elif types[column.name] != column.type:
                problems.append(f"{image.name}.{column.name} is {types[column.name]}, the snapshot's is "
                                f"{column.type}")
        tables.append(LiveTable(image.schema, image.name, tuple(c.name for c in image.columns),
                                {c.name: c.type for c in image.columns}, image.primary_key))
    if problems:
        raise RestorePlanError(f"the target's schema cannot hold snapshot {snapshot.id}: "
                               + "; ".join(problems))
    return tables


async def load_as_of(conn: asyncpg.Connection, repo: Repository, key: Key | None,
                     plan: FullPlan) -> FullRestoreReport:
    """Replace the rows of every table of the plan's snapshot with the rows as at plan.as_of.

    Must run inside a transaction on a schema that has every table and column of the snapshot.
    Raises RestorePlanError for a schema that cannot hold the snapshot, RestoreError for a count
    that disagrees with the manifest or a PostgreSQL failure (roll back then: nothing is kept).
    """
    started = time.perf_counter()
    history = plan.history
    try:
        tables = await _check_schema(conn, history.snapshot)
        names = [t.qualified for t in tables]
        aside = await set_aside(conn, names)
        await conn.execute(f"TRUNCATE {', '.join(names)}")
        # Index builds sort in memory and use parallel workers when they can.
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        loaded = await _copy_all(conn, repo, key, history.snapshot)
        await build_back_primary_keys(conn, aside)
        replayed = {t.name: await replay(conn, repo, key, history, t, t.qualified, f"vv_replay_{t.name}",
                                         plan.as_of) if t.primary_key else 0 for t in tables}
        await build_back_rest(conn, aside)
        results = []
        for table, image in zip(tables, history.snapshot.tables, strict=True):
            await _continue_identities(conn, table)
            rows = await conn.fetchval(f"SELECT count(*) FROM {table.qualified}")
            results.append(TableRestore(table.name, image.rows, loaded[table.name],
                                        replayed[table.name], rows))
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"full restore failed in PostgreSQL, nothing was kept: {exc}") from exc
    return FullRestoreReport(plan.as_of, history.snapshot.id, len(history.segments), tuple(results),
                             aside.count, round(time.perf_counter() - started, 3))


async def _copy_all(conn: asyncpg.Connection, repo: Repository, key: Key | None,
                    snapshot: SnapshotManifest) -> dict[str, int]:
    """COPY every chunk; table -> rows loaded. RestoreError when a table's count differs from
    the manifest's (a chunk lost or altered in a way its checksum did not show)."""
    loaded = {image.name: 0 for image in snapshot.tables}
    async for image, data in _decoded_chunks(repo, key, snapshot.tables):
        # FREEZE: the tables were emptied in this transaction, so rows go in frozen and visible,
        # and neither the index builds nor the API's first reads rewrite every page (hint bits).
        status = await conn.copy_to_table(image.name, schema_name=image.schema, format="text", freeze=True,
                                          source=io.BytesIO(data), columns=[c.name for c in image.columns])
        loaded[image.name] += int(status.split()[-1])
    for image in snapshot.tables:
        if loaded[image.name] != image.rows:
            raise RestoreError(f"table {image.name}: loaded {loaded[image.name]} rows but snapshot "
                               f"{snapshot.id} records {image.rows}; run 'vaxvault backup verify --deep'")
    return loaded


async def _decoded_chunks(repo: Repository, key: Key | None,
                          images: Sequence[TableImage]) -> AsyncIterator[tuple[TableImage, bytes]]:
    """Each chunk's decoded rows in order, with up to PREFETCH more read and decoded meanwhile."""
    work: deque[tuple[TableImage, Chunk]] = deque((image, chunk) for image in images
                                                  for chunk in image.chunks)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="vaxvault-restore") as pool:
        ahead: deque[tuple[TableImage, asyncio.Future[bytes]]] = deque()
        while work or ahead:
            while work and len(ahead) <= PREFETCH:
                image, chunk = work.popleft()
                ahead.append((image, loop.run_in_executor(pool, read_chunk, repo, chunk, key)))
            image, future = ahead.popleft()
            yield image, await future


async def _continue_identities(conn: asyncpg.Connection, table: LiveTable) -> None:
    """Make every identity or serial column continue after the restored rows, not from 1."""
    for column in table.columns:
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table.qualified, column)
        if sequence is None:
            continue
        highest = await conn.fetchval(
            f"SELECT max({quote_identifier(column)})::bigint FROM {table.qualified}")
        await conn.execute("SELECT setval($1::regclass, $2, $3)", sequence, highest or 1, highest is not None)
