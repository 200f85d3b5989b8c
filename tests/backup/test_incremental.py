"""Incremental segments: no committed change missed or shipped twice, long transactions included."""

from __future__ import annotations

import asyncpg

from backup.capture.triggers import SCHEMA
from backup.config import BackupConfig
from backup.runner import run_backup
from backup.storage import reader
from backup.storage.change import Change, Op
from backup.storage.repository import open_repository
from tests.backup.conftest import install_capture

SET_LOT = "UPDATE doses SET lot_number = $2 WHERE id = $1"


def _shipped(config: BackupConfig) -> list[Change]:
    repo = open_repository(config.replica_urls[0])
    return [c for s in reader.list_segments(repo) for c in reader.read_changes(repo, s, None)]


async def test_a_transaction_open_across_two_runs_is_shipped_once_by_the_later_one(
        file_config: BackupConfig) -> None:
    await install_capture(file_config.database_url)
    await run_backup(file_config, full=True)
    long = await asyncpg.connect(file_config.database_url)
    other = await asyncpg.connect(file_config.database_url)
    try:
        long_tx = long.transaction()
        await long_tx.start()
        await long.execute(SET_LOT, 1, "LONG")          # captured before run 1, commits after it
        await other.execute(SET_LOT, 2, "SHORT-1")      # commits before run 1

        first = await run_backup(file_config, full=False)
        assert first.changes == 1
        assert [c.new["lot_number"] for c in _shipped(file_config) if c.new] == ["SHORT-1"]
        await other.execute(SET_LOT, 3, "SHORT-2")
        await long_tx.commit()
        # The trim after run 1 kept the then-running transaction's change: it was not shipped.
        assert await other.fetchval(f"SELECT count(*) FROM {SCHEMA}.changes") == 2
        second = await run_backup(file_config, full=False)
        assert second.changes == 2

        shipped = _shipped(file_config)
        lots = sorted(c.new["lot_number"] for c in shipped if c.new)
        assert lots == ["LONG", "SHORT-1", "SHORT-2"]
        assert len({c.position for c in shipped}) == len(shipped)
        assert all(c.op is Op.UPDATE and c.table == "doses" for c in shipped)
        assert await other.fetchval(f"SELECT count(*) FROM {SCHEMA}.changes") == 0  # trimmed

        third = await run_backup(file_config, full=False)
        assert third.noop and third.changes == 0
        segments = reader.list_segments(open_repository(file_config.primary_url or ""))
        assert len(segments) == 2
        assert segments[1].from_position == segments[0].to_position
    finally:
        await long.close()
        await other.close()


async def test_full_snapshot_and_segments_meet_without_gap(file_config: BackupConfig) -> None:
    """Changes before the full run are in the segment cut with it; later ones in later segments."""
    await install_capture(file_config.database_url)
    conn = await asyncpg.connect(file_config.database_url)
    try:
        await conn.execute(SET_LOT, 1, "BEFORE")
        full = await run_backup(file_config, full=True)
        await conn.execute(SET_LOT, 1, "AFTER")
        await conn.execute("DELETE FROM doses WHERE id = 5")
        incremental = await run_backup(file_config, full=False)
    finally:
        await conn.close()
    assert full.segment_id == full.snapshot_id and full.changes == 1
    repo = open_repository(file_config.primary_url or "")
    [snapshot] = reader.list_snapshots(repo)
    doses = snapshot.table("doses")
    image = {r["id"]: r for c in doses.chunks for r in reader.iter_chunk_rows(repo, doses, c, None)}
    assert image["1"]["lot_number"] == "BEFORE" and "5" in image
    later = [s for s in reader.list_segments(repo) if s.id > snapshot.id]
    assert [s.id for s in later] == [incremental.segment_id]
    changes = reader.read_changes(repo, later[0], None)
    assert [(c.op, c.key) for c in changes] == [(Op.UPDATE, {"id": 1}), (Op.DELETE, {"id": 5})]
    assert changes[0].committed_at <= changes[1].committed_at
    assert changes[0].committed_at > snapshot.cut_at


async def test_a_segment_stored_but_not_recorded_in_the_database_is_not_shipped_again(
        file_config: BackupConfig) -> None:
    """As if killed between committing a segment and recording its watermark in PostgreSQL."""
    await install_capture(file_config.database_url)
    conn = await asyncpg.connect(file_config.database_url)
    try:
        before = await conn.fetchrow(f"SELECT watermark, segment_id FROM {SCHEMA}.state")
        await conn.execute(SET_LOT, 1, "ONCE")
        first = await run_backup(file_config, full=False)
        await conn.execute(f"UPDATE {SCHEMA}.state SET watermark = $1, segment_id = $2", *before)
        await conn.execute(SET_LOT, 2, "NEXT")
        second = await run_backup(file_config, full=False)
    finally:
        await conn.close()
    assert (first.changes, second.changes) == (1, 1)
    assert [c.new["lot_number"] for c in _shipped(file_config) if c.new] == ["ONCE", "NEXT"]
