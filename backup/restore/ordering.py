"""Commit order: when a restore cannot tell whether a change came before or after T.

A change is dated by its transaction's commit timestamp when the server tracks them
(track_commit_timestamp = on). Without it, the capture clock is the only date: a lower bound, so a
transaction that began before T and committed after T would count as before T. The restore does
not guess silently: it names every window around T whose changes it cannot order (FORMAT.md).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from backup.restore.source import LIVE_LOG, History

TRACKED = "SELECT current_setting('track_commit_timestamp')::boolean"


async def commit_timestamps_tracked(conn: asyncpg.Connection) -> bool:
    tracked: bool = await conn.fetchval(TRACKED)
    return tracked


def segment_windows(history: History, as_of: datetime) -> list[str]:
    """Segments dated by capture time whose window [first change, cut] holds T: a transaction of
    theirs may have begun before T and committed after it (it committed by the cut)."""
    return [f"segment {s.id} dates its changes by capture time (track_commit_timestamp was off), and "
            f"T falls inside its window {s.first_committed_at.isoformat()} .. {s.cut_at.isoformat()}: a "
            "transaction that began before T and committed after it counts as before T; choose T outside "
            "that window to be sure"
            for s in history.segments
            if s.commit_time == "capture" and s.first_committed_at is not None
            and s.first_committed_at <= as_of < s.cut_at]


async def live_log_window(conn: asyncpg.Connection, history: History, table: str,
                          as_of: datetime) -> list[str]:
    """Without commit timestamps, the live log's changes captured at or before T may have committed
    after it (nothing bounds them but now)."""
    if not history.live_log or await commit_timestamps_tracked(conn):
        return []
    earliest = await conn.fetchval(
        f"SELECT min(captured_at) FROM {LIVE_LOG} WHERE table_name = $1 AND captured_at <= $2 "
        "AND NOT pg_visible_in_snapshot(txid, $3::text::pg_snapshot)", table, as_of,
        history.snapshot.position)
    if earliest is None:
        return []
    return [f"track_commit_timestamp is off: changes of {table} captured from {earliest.isoformat()} up to T "
            "are dated by capture time, so one whose transaction committed after T counts as before T; "
            "turn it on (ALTER SYSTEM SET track_commit_timestamp = on, then restart PostgreSQL) so later "
            "changes can be ordered"]


async def ordering_warnings(conn: asyncpg.Connection, history: History, table: str,
                            as_of: datetime) -> list[str]:
    """Every window around `as_of` whose changes of `table` the restore cannot order against T."""
    return segment_windows(history, as_of) + await live_log_window(conn, history, table, as_of)
