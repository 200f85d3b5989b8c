"""One backup run: lock, cut (full snapshot and/or segment) into the spool, push to every stage,
release the spool, trim the live change log. Runs are exclusive across machines (advisory lock)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg

from backup.capture import changelog, logical
from backup.capture.catalog import describe_tables, schema_ddl
from backup.capture.triggers import refresh_if_stale
from backup.config import BackupConfig
from backup.errors import BackupError, CaptureError, ConfigError, DatabaseError, LockHeld, StorageError
from backup.listing import Listing, stage_listing
from backup.snapshot import Progress, copy_tables
from backup.stages import EarlyUploads, Stage, build_stages, push, release, remove_orphans
from backup.storage import keys
from backup.storage.codec import Key, encode, sha256
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef, SegmentManifest, SnapshotManifest, encode_manifest

# pg advisory lock key: b"vaxvault" as a bigint. Held for the whole run by one session.
LOCK_KEY = int.from_bytes(b"vaxvault", "big") & 0x7FFF_FFFF_FFFF_FFFF
SNAPSHOT_SCHEMA = "public"


@dataclass(frozen=True)
class RunSummary:
    kind: str
    snapshot_id: str | None
    segment_id: str | None
    changes: int
    rows: int
    bytes: int
    seconds: float
    pushed: dict[str, list[str]] = field(default_factory=dict)
    trimmed: int = 0
    # Wall seconds per phase: prepare (lock, list the stages, reconcile), cut (snapshot/segment
    # into the spool; chunks: the tables' COPY within it, uploads to the stages overlapping),
    # push:<stage> (what is left to copy and verify, then the manifest), release, trim.
    phases: dict[str, float] = field(default_factory=dict)
    # Why an incremental run took a full snapshot instead (no base to replay its segment on).
    promoted: str | None = None
    # Logical capture with max_slot_wal_keep_size set: WAL the server may still write before
    # the capture slot loses changes (backup/metrics.py).
    slot_safe_wal: int | None = None
    # Capture installed by an older vaxvault, refreshed by this run (capture/triggers.py).
    refreshed: str | None = None

    @property
    def noop(self) -> bool:
        return self.snapshot_id is None and self.segment_id is None and not any(self.pushed.values())


async def connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL for backup: {exc}") from exc


async def acquire_lock(conn: asyncpg.Connection) -> None:
    """Take the cluster-wide backup lock on this session; LockHeld when another run has it."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        raise LockHeld("another backup run holds the backup lock; it will be retried at the next "
                       "scheduled time (or run again when it finishes)")


def list_stages(stages: list[Stage], key: Key | None, failures: dict[str, str]) -> dict[str, Listing]:
    """Stage name -> what it holds, read once per run (the spool in full, the others from their
    index, backup/listing.py). Stages that cannot be listed go to `failures`."""
    listings = {}
    for stage in stages:
        try:
            listings[stage.name] = stage_listing(stage.name, stage.repo, key)
        except StorageError as exc:
            failures[stage.name] = str(exc)
    return listings


def _newest_segment(listing: Listing) -> tuple[str, str] | None:
    """(id, to_position) of the newest committed segment of a stage; BackupError when its
    manifest was refused (fails authentication) or cannot be read."""
    newest = listing.newest("segment")
    if newest is None:
        return None
    if newest in listing.refused:
        raise BackupError(listing.refused[newest])
    entry = listing.entries[newest]
    return entry.id, entry.to_position  # type: ignore[union-attr]


async def _reconcile_watermark(conn: asyncpg.Connection, stages: list[Stage],
                               listings: dict[str, Listing], failures: dict[str, str]) -> str:
    """The position to cut from. A run killed after committing a segment to a stage but before
    recording it in the database is repaired here, so its changes are not shipped twice.
    Stages that cannot be read are recorded in `failures` and skipped for the rest of the run."""
    position, segment_id = await changelog.read_watermark(conn)
    for stage in stages:
        if stage.name in failures:
            continue
        try:
            newest = _newest_segment(listings[stage.name])
        except BackupError as exc:  # a manifest that fails authentication
            failures[stage.name] = str(exc)
            continue
        if newest and (segment_id is None or newest[0] > segment_id):
            segment_id, position = newest
            await changelog.set_watermark(conn, position, segment_id)
    return position


Cut = tuple[SegmentManifest | None, SnapshotManifest | None]


@contextlib.asynccontextmanager
async def _read_only(conn: asyncpg.Connection, drains: bool = False) -> AsyncIterator[None]:
    """A REPEATABLE READ transaction, read-only unless it `drains` the capture slot into the
    change log (logical capture writes there). On an error it is rolled back only if that can
    be done, so the error raised is the run's own: a worker whose backend died (terminated, or
    the server restarted) has no transaction left to end, and asyncpg's own transaction block
    would replace the cause with "the underlying connection is closed"."""
    # asyncpg's own Transaction, started and ended by hand: code inside may open savepoints
    # (conn.transaction() refuses to nest in a transaction begun with a bare BEGIN).
    transaction = conn.transaction(isolation="repeatable_read", readonly=not drains)
    await transaction.start()
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError,
                                     asyncpg.InternalClientError):
                await transaction.rollback()
        raise
    await transaction.commit()


def missing_base(listings: dict[str, Listing], targets: list[Stage]) -> str | None:
    """Why an incremental run must take a full snapshot: a stage holds no committed snapshot and
    none waits in the spool for it, so a segment shipped there could never be replayed (as
    pgBackRest turns an incr without a base into a full). None when every stage has a base."""
    if listings["spool"].newest("snapshot"):
        return None
    for stage in targets:
        if stage.name in listings and not listings[stage.name].newest("snapshot"):
            return f"{stage.name} holds no snapshot to replay segments on"
    return None


async def _capture(conn: asyncpg.Connection, full: bool, database_url: str) -> tuple[bool, bool]:
    """(drained, restarted): whether capture is logical (the cut drains the slot first) and
    whether this full run recreated a slot that lost changes or holds one it cannot decode (its
    segment would miss changes: none is cut, and the snapshot starts a new chain). Raises
    CaptureError for an incremental after a loss."""
    if await logical.mode(conn) != "logical":
        return False, False
    problem = await logical.slot_problem(conn)
    if problem is None and full:
        # A full run is the way out of a drain that cannot decode: drain first, on its own (the
        # cut drains again what comes after), and recreate the slot if that fails.
        try:
            async with conn.transaction(isolation="repeatable_read"):
                await logical.lock(conn)
                await logical.drain(conn, database_url)
        except logical.Undecodable as exc:
            problem = str(exc)
    if problem is None:
        return True, False
    if not full:
        raise CaptureError(logical.lost_message(problem))
    await logical.restart(conn, recreate=True)
    return True, True


async def _cut(config: BackupConfig, conn: asyncpg.Connection, spool: FileRepository, previous: str,
               full: bool, progress: Progress | None, early: EarlyUploads | None,
               phases: dict[str, float], capture: tuple[bool, bool] = (False, False)) -> Cut:
    drained, restarted = capture
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(_read_only(conn, drains=drained))
        if drained:
            await logical.lock(conn)  # before the snapshot: see capture/logical.py
        cut = await conn.fetchrow(
            "SELECT pg_current_snapshot()::text AS position, clock_timestamp() AS cut_at, "
            "current_database() AS db, current_setting('server_version') AS version, "
            "pg_export_snapshot() AS export")
        # Connections in the cut's snapshot: the tables' copiers of a full run; the second also
        # reads the segment's summary while the first streams its lines.
        workers = [conn]
        for _ in range(max(0, config.workers - 1) if full else min(0 if drained else 1, config.workers - 1)):
            worker = await connect(config.database_url)
            stack.push_async_callback(worker.close)
            await stack.enter_async_context(_read_only(worker))
            await worker.execute(f"SET TRANSACTION SNAPSHOT '{cut['export']}'")
            workers.append(worker)
        if drained:
            drain_started = time.perf_counter()
            await logical.drain(conn, config.database_url)
            phases["drain"] = _since(drain_started)
        segment = None if restarted else await changelog.cut_segment(
            conn, previous, cut["position"], cut["cut_at"], spool, config.key,
            None if drained else workers[1] if len(workers) > 1 else None, drained=drained)
        if not full:
            return segment, None
        tables = await describe_tables(conn, SNAPSHOT_SCHEMA)
        snapshot_id = keys.format_id(cut["cut_at"])
        chunks_started = time.perf_counter()
        images = await copy_tables(workers, tables, snapshot_id, spool, config.key, config.chunk_rows,
                                   progress, early.submit if early else None)
        phases["chunks"] = _since(chunks_started)
        schema_key = keys.format_schema_key(snapshot_id)
        schema_data = encode(schema_ddl(tables).encode(), schema_key, config.key)
        spool.put(schema_key, schema_data)
        manifest = SnapshotManifest(
            id=snapshot_id, cut_at=cut["cut_at"], position=cut["position"], database=cut["db"],
            server_version=cut["version"], encryption_key_id=config.key.id if config.key else None,
            schema=ObjectRef(schema_key, sha256(schema_data), len(schema_data)), tables=tuple(images),
            continues=previous if segment is None and not restarted else None)
        manifest_key = keys.format_snapshot_manifest_key(snapshot_id)
        spool.put(manifest_key, encode_manifest(manifest, manifest_key, config.key))
        return segment, manifest
    raise AssertionError("unreachable")


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


async def run_backup(config: BackupConfig, full: bool, progress: Progress | None = None) -> RunSummary:
    """Run one backup. Raises LockHeld, DatabaseError/CaptureError, or StorageError when a stage
    could not be reached after retries (the spool then keeps the data for the next run)."""
    if not config.primary_url:
        raise ConfigError("no primary repository: set VAXVAULT_BACKUP_URL to s3://bucket/prefix "
                          "or file:///path")
    started = time.perf_counter()
    spool = FileRepository(config.spool_dir)
    stages = build_stages(spool, config.primary_url, config.replica_urls, config.s3_endpoint_url)
    conn = await connect(config.database_url)
    early: EarlyUploads | None = None
    phases: dict[str, float] = {}
    try:
        await acquire_lock(conn)
        try:
            refreshed = await refresh_if_stale(conn)
        except asyncpg.PostgresError as exc:
            raise DatabaseError(f"cannot check the installed change capture: {exc}") from exc
        remove_orphans(spool)
        try:
            failures: dict[str, str] = {}
            listings = list_stages(stages, config.key, failures)
            if "spool" in failures:
                raise StorageError(f"cannot read the spool: {failures['spool']}")
            previous = await _reconcile_watermark(conn, stages, listings, failures)
            for stage in stages[1:]:
                if stage.name not in failures:
                    try:
                        # before uploads of this run can start
                        remove_orphans(stage.repo, listings[stage.name])
                    except StorageError as exc:
                        failures[stage.name] = str(exc)
            targets = [s for s in stages[1:] if s.name not in failures]
            promoted = None if full else missing_base(listings, targets)
            full = full or promoted is not None
            capture = await _capture(conn, full, config.database_url)
            early = EarlyUploads(spool, targets) if full and targets else None
            phases["prepare"] = _since(started)
            cut_started = time.perf_counter()
            segment, snapshot = await _cut(config, conn, spool, previous, full, progress, early, phases,
                                           capture)
            phases["cut"] = _since(cut_started)
            if segment or snapshot:
                position = snapshot.position if snapshot else segment.to_position  # type: ignore[union-attr]
                segment_id = segment.id if segment else (await changelog.read_watermark(conn))[1]
                await changelog.set_watermark(conn, position, segment_id or "")
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # a lost connection: InterfaceError
            raise DatabaseError(f"backup run failed in PostgreSQL: {exc}") from exc
        except asyncpg.InternalClientError as exc:
            # What asyncpg raises on the next statement of a connection whose server process was
            # terminated just as its COPY ended (seen in test_snapshot_failures, ~1 run in 10).
            raise DatabaseError(f"backup run failed in PostgreSQL: a connection was closed mid-statement "
                                f"(its server process ended?): {exc}") from exc
        pushed: dict[str, list[str]] = {}
        for stage in stages[1:]:
            if stage.name in failures:
                continue
            push_started = time.perf_counter()
            try:
                pushed[stage.name] = push(spool, stage, config.key,
                                          early.verified(stage.name) if early else None,
                                          listings[stage.name])
            except StorageError as exc:
                failures[stage.name] = str(exc)
            phases[f"push:{stage.name}"] = _since(push_started)
        release_started = time.perf_counter()
        release(spool, stages[1:], {n: listings[n] for n in listings if n not in failures})
        phases["release"] = _since(release_started)
        slot_safe_wal = None
        if capture[0]:
            try:
                slot_safe_wal = await logical.safe_wal_size(conn)
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"cannot read the capture slot's state: {exc}") from exc
        trimmed = 0
        if not failures:
            trim_started = time.perf_counter()
            watermark, _ = await changelog.read_watermark(conn)
            trimmed = await changelog.trim(conn, watermark)
            phases["trim"] = _since(trim_started)
        if failures:
            raise StorageError(f"backup kept in the spool {spool.root}, not stored at "
                               + "; ".join(f"{name}: {why}" for name, why in failures.items()))
        rows = sum(t.rows for t in snapshot.tables) if snapshot else 0
        size = sum(r.size for r in snapshot.objects()) if snapshot else 0
        size += segment.object.size if segment else 0
        return RunSummary(kind="full" if full else "incremental",
                          snapshot_id=snapshot.id if snapshot else None,
                          segment_id=segment.id if segment else None,
                          changes=segment.changes if segment else 0, rows=rows, bytes=size,
                          seconds=round(time.perf_counter() - started, 3), pushed=pushed, trimmed=trimmed,
                          phases=phases,
                          promoted=promoted, slot_safe_wal=slot_safe_wal, refreshed=refreshed)
    finally:
        if early:
            early.close()
        await conn.close()
