"""Disaster recovery, the data half: every table of the repository as at T, loaded into a schema
the caller builds, on several connections at once.

Nothing read from the repository is executed as SQL: the caller builds the schema with its own
code (vaxvault runs its migrations on the empty target) and this module only loads rows. The
steps, and what each commits:
1. one transaction on the first connection: the unfinished-restore marker
   (backup.restore.unfinished), the caller's schema, the check that it can hold the snapshot, and
   keys, indexes and triggers set aside (backup.restore.bulk_load);
2. the job graph of backup.restore.load_jobs on every connection: each table loaded with one COPY
   FREEZE in its own transaction, its primary key's index, the replay of its changes up to T, its
   other indexes; then the keys attached and the foreign keys validated;
3. one last transaction on the first connection: the tables the caller holds back (the migration
   ledger: while it is empty the API is never ready and `db migrate` refuses), triggers back on,
   identities moved past the restored rows, the caller's last steps, and the marker dropped.
A failure anywhere stops every connection and clears what was built (the target is as it was);
if even that cannot run (the server or this process died), the marker stays, and the next
`restore full` on the target clears it first. Statistics are left to autovacuum, which analyzes
the loaded tables within its first round, rather than holding the API's readiness for them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

import asyncpg

from backup.restore import unfinished
from backup.restore.asof import LiveTable
from backup.restore.bulk_load import set_aside
from backup.restore.errors import RestoreError, RestorePlanError
from backup.restore.job_graph import run_jobs
from backup.restore.load_jobs import Source, TableAtT, build_jobs, load_table, replay_table
from backup.restore.predicate_sql import quote_identifier
from backup.restore.source import History, choose
from backup.restore.table_copy import PREFETCH
from backup.storage.codec import Key
from backup.storage.manifest import SegmentManifest, SnapshotManifest
from backup.storage.reader import CopyRow, iter_chunk_rows, list_segments, list_snapshots
from backup.storage.repository import Repository

T = TypeVar("T")

# Every connection of a restore. Index builds sort in memory (256 MB each: two connections and
# their parallel workers stay well inside a server sized for a 1M-row registry). Commits need not
# wait for the disk: until the last transaction, which does wait, any commit lost to a crash
# leaves the marker in place, and the marker says "unfinished" whatever else was lost.
_SESSION = "SET maintenance_work_mem = '256MB'; SET synchronous_commit = off"


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
    connections: int = 1
    cleared: str | None = None     # an unfinished restore found on the target and cleared first
    phases: dict[str, float] = field(default_factory=dict)    # step -> wall seconds
    job_seconds: dict[str, float] = field(default_factory=dict)  # each job's own seconds


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



async def restore_into(connections: Sequence[asyncpg.Connection], repo: Repository, key: Key | None,
                       plan: FullPlan, *, build_schema: Callable[[asyncpg.Connection], Awaitable[None]],
                       complete: Callable[[asyncpg.Connection, FullRestoreReport], Awaitable[T]],
                       held_back: frozenset[str] = frozenset()) -> tuple[FullRestoreReport, T]:
    """Make the empty database behind `connections` (all to the same one; the caller holds its
    migration lock on the first) hold every table of the plan's snapshot as at plan.as_of.

    `build_schema(conn)` creates the tables (in the first transaction), `complete(conn, report)`
    finishes the database (in the last); tables named in `held_back` are loaded in the last
    transaction too. Returns the report and what `complete` returned. Raises RestorePlanError for a
    schema that cannot hold the snapshot, RestoreError for a non-empty target, a count that
    disagrees with the manifest or a PostgreSQL failure; whatever `build_schema`/`complete` raise
    passes through. After a failure the target is as it was (or, when even clearing failed, holds
    the marker; the error says so).
    """
    started = time.perf_counter()
    main = connections[0]
    found = await unfinished.found(main)
    if found is not None:
        await unfinished.clear(main)
    await ensure_empty(main)
    for conn in connections:
        await conn.execute(_SESSION)
    phases: dict[str, float] = {}
    # A thread for every read a connection keeps ahead, so one table's slow reads never hold up
    # another's. Not a `with`: after a failure the restore must not wait for a read in flight.
    pool = ThreadPoolExecutor(max_workers=len(connections) * (PREFETCH + 1),
                              thread_name_prefix="vaxvault-restore")
    try:
        source = Source(repo, key, plan.history, plan.as_of, pool)
        async with main.transaction():
            await unfinished.mark(main, plan.history.snapshot.id, plan.as_of)
            await build_schema(main)
            tables = await _check_schema(main, plan.history.snapshot)
            bulk = [t for t in tables if t.name not in held_back]
            aside = await set_aside(main, [t.qualified for t in bulk])
        phases["schema"] = _since(started)
        results: dict[str, TableAtT] = {}
        ran = await run_jobs(connections, build_jobs(source, bulk, aside, results))
        phases["tables, keys and indexes"] = _since(started) - phases["schema"]
        async with main.transaction():
            await main.execute("SET LOCAL synchronous_commit = on")  # the one commit that says "done"
            images = {image.name: image for image in plan.history.snapshot.tables}
            for table in (t for t in tables if t.name in held_back):
                loaded = await load_table(main, source, table, images[table.name])
                results[table.name] = await replay_table(main, source, table, loaded)
            for statement in (*aside.attach, *aside.enable):
                await main.execute(statement)
            for table in tables:
                await _continue_identities(main, table)
            report = FullRestoreReport(
                plan.as_of, plan.history.snapshot.id, len(plan.history.segments),
                tuple(TableRestore(t.name, images[t.name].rows, results[t.name].loaded,
                                   results[t.name].replayed, results[t.name].rows) for t in tables),
                aside.count, 0.0, len(connections), found.describe() if found else None, phases,
                ran.seconds)
            outcome = await complete(main, report)
            await unfinished.finish(main)
    except asyncpg.PostgresError as exc:
        await _clear_after(main, exc)
        raise RestoreError(f"full restore failed in PostgreSQL, nothing was kept: {exc}") from exc
    except BaseException as exc:
        await _clear_after(main, exc)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    phases["last transaction"] = _since(started) - sum(phases.values())
    return replace(report, seconds=_since(started)), outcome


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


async def _clear_after(main: asyncpg.Connection, failure: BaseException) -> None:
    """Take away what a failed restore built; RestoreError saying what is left if that fails too."""
    try:
        await unfinished.clear(main)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        raise RestoreError(
            f"full restore failed ({failure}), and what it built could not be cleared ({exc}): the target "
            f"holds an unfinished restore (table {unfinished.MARKER}); run the same 'restore full' again, "
            "which clears it first, or drop and create the database") from failure


async def _continue_identities(conn: asyncpg.Connection, table: LiveTable) -> None:
    """Make every identity or serial column continue after the restored rows, not from 1."""
    for column in table.columns:
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table.qualified, column)
        if sequence is None:
            continue
        highest = await conn.fetchval(
            f"SELECT max({quote_identifier(column)})::bigint FROM {table.qualified}")
        await conn.execute("SELECT setval($1::regclass, $2, $3)", sequence, highest or 1, highest is not None)
