"""A full snapshot that fails part-way: the run raises, nothing still writes, the lock is let go,
no stage holds a snapshot that looks complete, and the next run succeeds."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from backup.config import BackupConfig
from backup.errors import DatabaseError
from backup.runner import LOCK_KEY, run_backup
from backup.stages import build_stages, scan
from backup.storage.file import FileRepository
from backup.verify import verify
from tests.backup.conftest import install_capture


def _stages(config: BackupConfig) -> list:
    return build_stages(FileRepository(config.spool_dir), config.primary_url, config.replica_urls, None)


def _files(config: BackupConfig) -> dict[str, int]:
    """Every file under the spool and the file:// stages, with its size."""
    roots = [config.spool_dir, *(Path(url[len("file://"):]) for url in (config.primary_url or "",
                                                                         *config.replica_urls))]
    return {str(p): p.stat().st_size
            for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}


async def _assert_failed_cleanly(config: BackupConfig) -> None:
    """After a failed full run: nothing is still being written, the lock is free, no stage
    holds a committed snapshot; then a run succeeds and verifies."""
    after = _files(config)
    assert not [p for p in after if p.endswith(".partial")], "a write was still under way"
    await asyncio.sleep(0.5)
    assert _files(config) == after, "something went on writing after the run returned"
    conn = await asyncpg.connect(config.database_url)
    try:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY), "the lock is still held"
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()
    for stage in _stages(config):
        snapshots = {unit for unit, done in scan(stage.repo).items() if done and unit[0] == "snapshot"}
        assert not snapshots, f"a snapshot committed at {stage.name}"

    summary = await run_backup(config, full=True)
    assert summary.snapshot_id and summary.pushed["primary"] == [summary.snapshot_id]
    stages = _stages(config)
    for stage in stages:
        assert all(scan(stage.repo).values()), f"pieces of the failed run left at {stage.name}"
    assert verify(stages, deep=True).ok


async def test_an_error_recording_a_chunk_fails_the_run(file_config: BackupConfig) -> None:
    """The progress callback (the CLI's progress bar) raising on the third chunk must fail the
    run: recorded in a done-callback, the error went to the event loop's handler and the run
    committed the snapshot as complete."""
    config = replace(file_config, chunk_rows=40, workers=3)
    await install_capture(config.database_url)
    calls = 0

    def progress(rows: int, size: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise BrokenPipeError("the progress bar's terminal went away")

    with pytest.raises(BrokenPipeError, match="terminal went away"):
        await run_backup(config, full=True, progress=progress)
    await _assert_failed_cleanly(config)


BULK_ROWS = 60_000


async def test_a_worker_whose_copy_dies_fails_the_run_and_stops_the_others(file_config: BackupConfig) -> None:
    """One chunk's COPY fails mid-run (its backend is terminated from another connection while
    other workers copy and write theirs): the run fails with DatabaseError naming the cause, and
    once it returns no worker writes to the spool any more."""
    config = replace(file_config, chunk_rows=1_500, workers=3)
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute(f"CREATE TABLE bulk (id bigint PRIMARY KEY, note text); "
                           f"INSERT INTO bulk SELECT g, repeat(md5(g::text), 8) "
                           f"FROM generate_series(1, {BULK_ROWS}) g; ANALYZE bulk")
    finally:
        await conn.close()
    await install_capture(config.database_url)

    async def terminate_a_copy() -> int:
        """Once a few bulk chunks are in the spool, terminate the backend of a worker that is
        COPYing another one (the other workers are copying or writing theirs meanwhile)."""
        killer = await asyncpg.connect(config.database_url)
        try:
            while True:
                if len(list(config.spool_dir.glob("snapshots/*/tables/bulk/*.zst"))) >= 3:
                    pid = await killer.fetchval(
                        "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                        "AND query LIKE 'COPY (SELECT % FROM \"public\".\"bulk\" WHERE %' LIMIT 1")
                    if pid and await killer.fetchval("SELECT pg_terminate_backend($1)", pid):
                        return int(pid)
                await asyncio.sleep(0.002)
        finally:
            await killer.close()

    killing = asyncio.create_task(terminate_a_copy())
    try:
        # the backend may die mid-COPY ("terminating connection due to administrator command")
        # or just after it, found closed by the worker's next statement
        with pytest.raises(DatabaseError, match=r"backup run failed in PostgreSQL: .*(terminat|closed)"):
            await run_backup(config, full=True)
        assert killing.done(), "the run failed before any COPY was terminated"
        await killing
    finally:
        killing.cancel()
    await _assert_failed_cleanly(config)
