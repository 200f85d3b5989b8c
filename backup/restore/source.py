"""Where a restore's history comes from: the snapshot, the segments after it, then the live change
log, as ONE ordered sequence (by position) used both to rebuild rows as at T and after T.

Choosing is a pure function of manifests and the live log's watermark; reading streams one segment
at a time and keeps only the changes of one table, so memory follows the table's changes.

One consistent view without blocking backups: `open_history` reads the watermark as the first
statement of the restore's REPEATABLE READ transaction (which fixes its database snapshot) and
only then lists the repository. The runner trims the live log only after every stage holds the
segments that shipped the rows, so a change trimmed after our snapshot is still visible to us,
and one trimmed before it is in a segment we list afterwards: nothing falls between the two.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup.capture import logical
from backup.capture.changelog import LIVE_LINES
from backup.capture.triggers import SCHEMA
from backup.errors import CaptureError
from backup.restore.errors import RestoreError, RestorePlanError
from backup.storage import codec
from backup.storage.change import Change
from backup.storage.codec import Key
from backup.storage.manifest import SegmentManifest, SnapshotManifest
from backup.storage.position import includes
from backup.storage.reader import history_from, read_object
from backup.storage.repository import Repository
from backup.storage.segment import decode_changes

LIVE_LOG = f"{SCHEMA}.changes"


@dataclass(frozen=True)
class History:
    """The history of a point in time T: the base snapshot, the segments after it and, when
    `live_log` is set, the live change log's changes not visible in the snapshot (read in the same
    transaction that read the watermark). Changes of all three are ordered by position.

    reached: the cut up to which the repository's chain is unbroken (the snapshot's when no
    segment follows it); gap_after: the history breaks there, changes after it are unknown."""

    snapshot: SnapshotManifest
    segments: tuple[SegmentManifest, ...]
    gap_after: datetime | None = None
    live_log: bool = False
    reached_at: datetime | None = None  # None: the last segment's cut, or the snapshot's

    @property
    def reached(self) -> datetime:
        if self.reached_at is not None:
            return self.reached_at
        return self.segments[-1].cut_at if self.segments else self.snapshot.cut_at


def choose(snapshots: Sequence[SnapshotManifest], segments: Sequence[SegmentManifest],
           as_of: datetime, live_watermark: str | None = None) -> History:
    """The latest snapshot cut at or before `as_of`, the unbroken chain of segments after it and,
    when `live_watermark` is given, the live log (which holds every change not visible there).

    The log joins the chain when everything visible at `live_watermark` (up to where the log was
    trimmed) is visible at the chain's end; then the history is complete up to now.
    Raises RestorePlanError when no snapshot is old enough, or when neither segments nor the log
    cover some moment between the snapshot and `as_of` (the image at T would be wrong). A hole
    after `as_of` is recorded in gap_after.
    """
    usable = [s for s in snapshots if s.cut_at <= as_of]
    if not usable:
        oldest = min((s.cut_at for s in snapshots), default=None)
        hint = f"the oldest snapshot is {oldest.isoformat()}" if oldest else "the repository has none"
        raise RestorePlanError(f"no snapshot at or before {as_of.isoformat()} ({hint}); "
                               "choose a later --as-of")
    snapshot = max(usable, key=lambda s: s.cut_at)
    by_start = {s.from_position: s for s in segments}
    # A full run with nothing to ship cuts no segment; its snapshot says the log had no change
    # between `continues` and its position, which links the chain across it.
    empty_links = {s.continues: s for s in snapshots if s.continues and s.continues != s.position}
    chain: list[SegmentManifest] = []
    position = snapshot.position
    reached = snapshot.cut_at
    while position in by_start or position in empty_links:
        if position in by_start:
            segment = by_start.pop(position)
            chain.append(segment)
            position, reached = segment.to_position, segment.cut_at
        else:
            link = empty_links.pop(position)
            position, reached = link.position, link.cut_at
    if live_watermark is not None:
        if includes(position, live_watermark):
            return History(snapshot, tuple(chain), live_log=True, reached_at=reached)
        if reached < as_of:
            raise RestorePlanError(
                f"changes after {reached.isoformat()} are in no segment of the repository and were already "
                "trimmed from the live change log, so the rows as of T cannot be rebuilt; choose --as-of "
                f"at or before {reached.isoformat()}, or restore from a stage that holds the later segments "
                "('vaxvault backup list' shows what each stage holds)")
        # The log still tells which rows changed after the hole, hence after T.
        return History(snapshot, tuple(chain), gap_after=reached, live_log=True, reached_at=reached)
    stranded = [s for s in by_start.values() if s.cut_at > reached]
    if not stranded:
        return History(snapshot, tuple(chain), reached_at=reached)
    if reached < as_of:
        raise RestorePlanError(
            f"a segment is missing after {reached.isoformat()} (the next one, {min(s.id for s in stranded)}, "
            "does not continue the chain), so the rows as of T cannot be rebuilt; choose --as-of at or "
            f"before {reached.isoformat()}, or run 'vaxvault backup verify' and repair the repository")
    return History(snapshot, tuple(chain), gap_after=reached, reached_at=reached)


def segments_in_window(segments: Sequence[SegmentManifest], table: str, after: datetime | None,
                       until: datetime | None) -> Iterator[SegmentManifest]:
    """The segments holding changes of `table` whose commit-time range meets (after, until]."""
    for segment in segments:
        if table not in segment.tables:
            continue
        if after and segment.last_committed_at and segment.last_committed_at <= after:
            continue
        if until and segment.first_committed_at and segment.first_committed_at > until:
            continue
        yield segment


def load_history(repo: Repository, as_of: datetime, key: Key | None = None) -> History:
    """The repository's history for `as_of`, without the live log (see choose)."""
    return choose(*history_from(repo, as_of, key), as_of)


async def open_history(conn: asyncpg.Connection, repo: Repository, key: Key | None, as_of: datetime,
                       use_live_log: bool) -> History:
    """The history for `as_of` in one consistent view: must be the FIRST read of the caller's
    REPEATABLE READ transaction (it fixes the snapshot the live log is read in), see the module doc.
    Raises RestorePlanError as choose does."""
    watermark = None
    if await conn.fetchval("SELECT to_regclass($1)", LIVE_LOG) is not None and use_live_log:
        # Up to where the log was trimmed; the cut watermark runs ahead of it while a stage is
        # down (segments wait in the spool, the log keeps their changes).
        watermark = await conn.fetchval(f"SELECT coalesce(trimmed, watermark) FROM {SCHEMA}.state")
    snapshots, segments = await asyncio.to_thread(history_from, repo, as_of, key)
    return choose(snapshots, segments, as_of, watermark)


async def connect(database_url: str, purpose: str) -> asyncpg.Connection:
    """One connection for restore's reads and writes; RestoreError saying `purpose` when it fails."""
    try:
        return await asyncpg.connect(database_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise RestoreError(f"cannot connect to PostgreSQL {purpose}: {exc}") from exc


async def check_history(database_url: str, repo: Repository, key: Key | None, as_of: datetime,
                        use_live_log: bool = True) -> History:
    """The history a restore as of `as_of` would use (open_history, live log included, in its own
    read-only transaction): a pre-check that accepts exactly what the restore accepts.

    Raises RestorePlanError as choose does, RestoreError when PostgreSQL cannot be reached.
    """
    conn = await connect(database_url, "to read the live change log")
    try:
        drains = use_live_log and await drains_live_log(conn)
        async with conn.transaction(isolation="repeatable_read", readonly=not drains):
            if drains:
                await drain_live_log(conn, database_url)
            return await open_history(conn, repo, key, as_of, use_live_log)
    finally:
        await conn.close()


async def drains_live_log(conn: asyncpg.Connection) -> bool:
    """Whether capture is logical, so the live log must be drained before it is read (outside
    the reading transaction: it must not take that transaction's snapshot)."""
    try:
        return await logical.mode(conn) == "logical"
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"cannot read the capture mode: {exc}") from exc


async def drain_live_log(conn: asyncpg.Connection, database_url: str) -> None:
    """Drain the capture slot into the live log: the FIRST statements of the caller's REPEATABLE
    READ transaction (capture/logical.py), which then sees every change its snapshot sees."""
    try:
        await logical.lock(conn)
        await logical.drain(conn, database_url)
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"cannot drain the capture slot into the live change log: {exc}") from exc
    except CaptureError as exc:
        raise RestoreError(str(exc)) from exc


def shipped_changes(repo: Repository, segments: Sequence[SegmentManifest], table: str,
                    key: Key | None, after: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Change]:
    """The changes of `table` in `segments` committed in (after, until], in position order per segment.

    Segments whose commit-time range lies outside the interval are not read.
    """
    for segment in segments_in_window(segments, table, after, until):
        data = codec.decode(read_object(repo, segment.object), segment.object.key, key)
        what = f"{repo.url}/{segment.object.key}"
        marker = f'"table":{json.dumps(table)}'.encode()
        for line in data.split(b"\n"):
            # Cheap test first: most lines of a busy segment belong to other tables.
            if marker not in line:
                continue
            for change in decode_changes(line, what):
                if change.table == table and (after is None or change.committed_at > after) \
                        and (until is None or change.committed_at <= until):
                    yield change


async def live_changes(database_url: str, table: str, after: datetime | None = None,
                       until: datetime | None = None) -> list[Change]:
    """Every committed change of `table` still in the live log, committed in (after, until]: what
    finding loss sees before the next incremental ships it.

    Raises RestoreError when the database or its change log cannot be read.
    Read it BEFORE listing the repository (as open_history does): a change trimmed in between
    has by then been shipped to every stage, so the later listing holds it. Some changes are in
    both; `merged` keeps one per position.
    """
    conn = await connect(database_url, "to read the live change log")
    try:
        drains = await drains_live_log(conn)
        async with conn.transaction(isolation="repeatable_read", readonly=not drains):
            if drains:
                await drain_live_log(conn, database_url)
            rows = await conn.fetch(LIVE_LINES, table, after, until)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise RestoreError(f"cannot read the live change log of {table}: {exc}") from exc
    finally:
        await conn.close()
    if not rows:
        return []
    return decode_changes("\n".join(r["line"] for r in rows).encode(), LIVE_LOG)


def merged(*sources: Iterable[Change]) -> list[Change]:
    """The changes of all sources, one per position (the first seen wins), in position order."""
    by_position: dict[int, Change] = {}
    for source in sources:
        for change in source:
            by_position.setdefault(change.position, change)
    return [by_position[p] for p in sorted(by_position)]
