"""Commit order on a server without track_commit_timestamp: `backup init` says so loudly with the
fix, and a restore whose T falls where it cannot order changes says so instead of guessing."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from api.cli import main
from api.embedded_postgres import EmbeddedPostgres
from backup.config import BackupConfig
from backup.restore.records import RestoreRequest, plan_restore
from backup.runner import run_backup
from backup.storage.reader import list_segments
from backup.storage.repository import open_repository

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def untracked_url() -> Iterator[str]:
    """A throwaway cluster like the others, but with commit timestamps off (a server-start setting)."""
    # /tmp rather than pytest's tmp dirs: the server runs as another user under root.
    with tempfile.TemporaryDirectory(prefix="vaxvault-untracked-") as root:
        cluster = EmbeddedPostgres(Path(root) / "pg", throwaway=True)
        cluster.initialise()
        with open(cluster.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write("track_commit_timestamp = off\n")  # the last line wins
        try:
            yield cluster.start()
        finally:
            cluster.destroy()


async def test_init_warns_and_restore_names_the_window_it_cannot_order(
        untracked_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    conn = await asyncpg.connect(untracked_url)
    try:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g")
    finally:
        await conn.close()
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", untracked_url)
    assert await asyncio.to_thread(main, ["backup", "init"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: track_commit_timestamp is off" in err
    assert "ALTER SYSTEM SET track_commit_timestamp = on" in err and "restart PostgreSQL" in err

    config = BackupConfig(database_url=untracked_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri())
    await run_backup(config, full=True)
    writer = await asyncpg.connect(untracked_url)
    clock = await asyncpg.connect(untracked_url)
    try:
        # A transaction that writes before T and commits after it.
        await writer.execute("BEGIN")
        await writer.execute("UPDATE items SET v = 'late' WHERE id = 1")
        as_of: datetime = await clock.fetchval("SELECT clock_timestamp()")
        await writer.execute("COMMIT")
    finally:
        await writer.close()
        await clock.close()
    repo = open_repository(config.primary_url or "")
    request = RestoreRequest(table="items", as_of=as_of)
    live = await plan_restore(untracked_url, repo, None, request)
    assert any("track_commit_timestamp is off: changes of items captured from" in w for w in live.warnings)

    await run_backup(config, full=False)
    [segment] = list_segments(repo)
    assert segment.commit_time == "capture"
    shipped = await plan_restore(untracked_url, repo, None, request)
    assert any(f"segment {segment.id} dates its changes by capture time" in w and "T falls inside" in w
               for w in shipped.warnings), shipped.warnings
