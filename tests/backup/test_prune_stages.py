"""Retention per stage: with the primary down for days while the spool moves on, prune must not
delete the primary's last base because the spool holds newer snapshots; and prune takes the lock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from backup.config import BackupConfig
from backup.errors import LockHeld, StorageError
from backup.prune import prune
from backup.restore.source import load_history
from backup.runner import LOCK_KEY, run_backup
from backup.stages import build_stages, scan
from backup.storage.file import FileRepository
from backup.storage.keys import parse_id
from tests.backup.conftest import install_capture

pytestmark = pytest.mark.slow


def _snapshots(stage_repo: FileRepository) -> list[str]:
    return sorted(i for (kind, i), ok in scan(stage_repo).items() if kind == "snapshot" and ok)


async def test_primary_down_for_days_keeps_its_base_through_prune(seeded_database_url: str,
                                                                   tmp_path: Path) -> None:
    config = BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=500)
    await install_capture(config.database_url)
    base = await run_backup(config, full=True)
    # The primary goes away (its path is not a directory): runs keep everything in the spool.
    (tmp_path / "gone").write_text("not a directory")
    down = replace(config, primary_url=(tmp_path / "gone" / "primary").as_uri())
    spooled = []
    conn = await asyncpg.connect(config.database_url)
    try:
        for lot, full in (("A", True), ("B", False), ("C", True)):
            await conn.execute("UPDATE doses SET lot_number = $1 WHERE id = 1", lot)
            with pytest.raises(StorageError, match="kept in the spool"):
                await run_backup(down, full=full)
            spooled.append(lot)
    finally:
        await conn.close()
    stages = build_stages(FileRepository(config.spool_dir), config.primary_url, (), None)
    spool, primary = stages[0].repo, stages[1].repo
    assert isinstance(spool, FileRepository) and isinstance(primary, FileRepository)
    pending = _snapshots(spool)
    assert len(pending) == 2 and _snapshots(primary) == [base.snapshot_id]
    days_later = parse_id(pending[-1]) + timedelta(days=10)

    holder = await asyncpg.connect(config.database_url)
    try:  # a backup run holds the lock: prune waits for no one and deletes nothing
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        with pytest.raises(LockHeld):
            await prune(config.database_url, stages, keep_full=1, keep_days=1, now=days_later)
    finally:
        await holder.close()

    plans, removed = await prune(config.database_url, stages, keep_full=1, keep_days=1, now=days_later)
    assert plans["primary"].snapshots == () and plans["primary"].segments == ()
    assert plans["spool"].snapshots == (pending[0],) and removed > 0
    assert _snapshots(primary) == [base.snapshot_id]  # the only base a restore from it has
    assert load_history(primary, days_later).snapshot.id == base.snapshot_id
    assert _snapshots(spool) == [pending[1]]

    # The primary is back: the newest snapshot reaches it, and only then may its old base go.
    await run_backup(config, full=False)
    assert _snapshots(primary) == [base.snapshot_id, pending[1]]
    plans, _ = await prune(config.database_url, stages, keep_full=1, keep_days=1, now=days_later)
    assert plans["primary"].snapshots == (base.snapshot_id,)
    assert _snapshots(primary) == [pending[1]]
