"""The scheduler: cron arithmetic, exclusive runs across processes, one summary line, metrics."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client import REGISTRY

from backup.config import BackupConfig
from backup.errors import ConfigError, LockHeld
from backup.runner import LOCK_KEY, run_backup
from backup.schedule import Schedule, next_run, run_once, run_schedule
from tests.backup.conftest import install_capture


def test_next_run_defaults_and_full_wins_a_tie() -> None:
    schedule = Schedule()
    assert next_run(schedule, datetime(2026, 11, 22, 1, 58, tzinfo=UTC)) == (
        datetime(2026, 11, 22, 2, 0, tzinfo=UTC), "full")
    assert next_run(schedule, datetime(2026, 11, 22, 2, 1, tzinfo=UTC)) == (
        datetime(2026, 11, 22, 2, 5, tzinfo=UTC), "incremental")
    with pytest.raises(ConfigError, match="'61 \\* \\* \\* \\*' is not a cron expression"):
        Schedule(incremental="61 * * * *")


async def test_a_run_is_exclusive_across_sessions(file_config: BackupConfig,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    await install_capture(file_config.database_url)
    holder = await asyncpg.connect(file_config.database_url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        with pytest.raises(LockHeld, match="another backup run holds the backup lock"):
            await run_backup(file_config, full=True)
        with caplog.at_level(logging.INFO, logger="vaxvault.backup.schedule"):
            assert await run_once(file_config, "full") is None
        assert "backup full skipped: another run holds the lock" in caplog.text
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        both = await asyncio.gather(run_backup(file_config, full=True), run_backup(file_config, full=True),
                                    return_exceptions=True)
        assert sorted(type(r).__name__ for r in both) == ["LockHeld", "RunSummary"]
    finally:
        await holder.close()


async def test_scheduler_runs_logs_one_line_per_run_and_updates_metrics(
        file_config: BackupConfig, caplog: pytest.LogCaptureFixture) -> None:
    await install_capture(file_config.database_url)
    await run_backup(file_config, full=True)  # the base: without one an incremental run takes a full
    stop = asyncio.Event()
    every_second = Schedule(full="0 0 1 1 *", incremental="* * * * * *")
    with caplog.at_level(logging.INFO, logger="vaxvault.backup.schedule"):
        task = asyncio.create_task(run_schedule(file_config, every_second, stop))
        await asyncio.sleep(1.6)
        stop.set()
        runs = await task
    lines = [r.getMessage() for r in caplog.records if r.name == "vaxvault.backup.schedule"]
    assert runs >= 1 and len(lines) == runs
    assert all(line.startswith("backup incremental: ") for line in lines)
    assert REGISTRY.get_sample_value("vaxvault_backup_last_success_timestamp_seconds",
                                     {"kind": "incremental"}) is not None
