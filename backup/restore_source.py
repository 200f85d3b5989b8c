"""Where a restore's history comes from: the snapshot and segments to use for T, and their changes.

Choosing is a pure function of manifests; reading streams one segment at a time and keeps only
the changes of one table, so memory follows the table's changes, not the repository's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup import codec
from backup.change import Change, Op
from backup.codec import Key
from backup.manifest import SegmentManifest, SnapshotManifest
from backup.reader import list_segments, list_snapshots, read_object
from backup.repository import Repository
from backup.restore_errors import RestorePlanError
from backup.segment import decode_changes

LIVE_LOG = "vaxvault_backup.changes"


@dataclass(frozen=True)
class History:
    """What the repository holds for a point in time T: the base snapshot and the segments after it."""

    snapshot: SnapshotManifest
    segments: tuple[SegmentManifest, ...]


def choose(snapshots: Sequence[SnapshotManifest], segments: Sequence[SegmentManifest],
           as_of: datetime) -> History:
    """The latest snapshot cut at or before `as_of` and the unbroken chain of segments after it.

    Raises RestorePlanError when no snapshot is old enough.
    """
    usable = [s for s in snapshots if s.cut_at <= as_of]
    if not usable:
        oldest = min((s.cut_at for s in snapshots), default=None)
        hint = f"the oldest snapshot is {oldest.isoformat()}" if oldest else "the repository has none"
        raise RestorePlanError(f"no snapshot at or before {as_of.isoformat()} ({hint}); "
                               "choose a later --as-of")
    snapshot = max(usable, key=lambda s: s.cut_at)
    by_start = {s.from_position: s for s in segments}
    chain: list[SegmentManifest] = []
    position = snapshot.position
    while position in by_start:
        segment = by_start.pop(position)
        chain.append(segment)
        position = segment.to_position
    return History(snapshot, tuple(chain))


def load_history(repo: Repository, as_of: datetime) -> History:
    return choose(list_snapshots(repo), list_segments(repo), as_of)


def shipped_changes(repo: Repository, segments: Sequence[SegmentManifest], table: str,
                    key: Key | None, after: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Change]:
    """The changes of `table` in `segments` committed in (after, until], in position order per segment.

    Segments whose commit-time range lies outside the interval are not read.
    """
    for segment in segments:
        if table not in segment.tables:
            continue
        if after and segment.last_committed_at and segment.last_committed_at <= after:
            continue
        if until and segment.first_committed_at and segment.first_committed_at > until:
            continue
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


_LIVE = f"""
SELECT position, txid::text AS txid,
       coalesce(pg_xact_commit_timestamp(txid::xid), captured_at) AS committed_at,
       op::text AS op, key::text AS key, old::text AS old, new::text AS new
FROM {LIVE_LOG}
WHERE table_name = $1 AND coalesce(pg_xact_commit_timestamp(txid::xid), captured_at) > $2
ORDER BY position
"""


async def live_changes(conn: asyncpg.Connection, table: str, after: datetime) -> list[Change] | None:
    """Committed changes of `table` after `after` still in the live change log (not yet trimmed),
    or None when the database has no change log (capture not installed, or the log was lost)."""
    if await conn.fetchval("SELECT to_regclass($1)", LIVE_LOG) is None:
        return None
    rows = await conn.fetch(_LIVE, table, after)
    return [Change(position=row["position"], txid=int(row["txid"]), committed_at=row["committed_at"],
                   table=table, op=Op(row["op"]),
                   key=json.loads(row["key"]) if row["key"] else None,
                   old=json.loads(row["old"]) if row["old"] else None,
                   new=json.loads(row["new"]) if row["new"] else None) for row in rows]
