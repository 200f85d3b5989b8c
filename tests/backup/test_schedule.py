"""The scheduler: cron arithmetic, exclusive runs across processes, one summary line, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

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


class CronClock:
    """Each reading is one minute after the last, for `steps` readings; then time stands still.

    run_schedule reads the clock twice per run (what is due, how long until then), so with an
    every-minute schedule each of the first steps // 2 runs is due at once; after that the next
    run is a minute of real waiting away, and the test stops the scheduler in that wait.
    """

    def __init__(self, steps: int) -> None:
        self.readings = [datetime(2026, 11, 22, 1, 0, 30, tzinfo=UTC) + timedelta(minutes=i)
                         for i in range(steps)]
        self.calls = 0

    def __call__(self) -> datetime:
        reading = self.readings[min(self.calls, len(self.readings) - 1)]
        self.calls += 1
        return reading


async def test_scheduler_runs_logs_one_line_per_run_and_updates_metrics(
        file_config: BackupConfig, caplog: pytest.LogCaptureFixture) -> None:
    await install_capture(file_config.database_url)
    await run_backup(file_config, full=True)  # the base: without one an incremental run takes a full
    stop = asyncio.Event()
    every_minute = Schedule(full="0 0 1 1 *", incremental="* * * * *")
    started = time.time()
    with caplog.at_level(logging.INFO, logger="vaxvault.backup.schedule"):
        task = asyncio.create_task(run_schedule(file_config, every_minute, stop, clock=CronClock(6)))
        async with asyncio.timeout(120):  # a bound on a hang, not a measurement
            while len([r for r in caplog.records if r.name == "vaxvault.backup.schedule"]) < 3:
                assert not task.done(), task
                await asyncio.sleep(0.05)
        stop.set()
        runs = await task
    lines = [r.getMessage() for r in caplog.records if r.name == "vaxvault.backup.schedule"]
    assert runs == 3 and len(lines) == 3, lines
    assert all(line.startswith("backup incremental: ") for line in lines), lines
    last_success = REGISTRY.get_sample_value("vaxvault_backup_last_success_timestamp_seconds",
                                             {"kind": "incremental"})
    assert last_success is not None and last_success >= started
