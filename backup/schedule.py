"""The long-running scheduler: full and incremental runs on cron expressions, one summary line each.

Many schedulers may run (on several machines); the advisory lock in runner makes each run
exclusive, and a run that finds the lock held is skipped, not queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from backup import metrics
from backup.config import BackupConfig
from backup.errors import BackupError, ConfigError, LockHeld
from backup.runner import RunSummary, run_backup

log = logging.getLogger("vaxvault.backup.schedule")

DEFAULT_FULL = "0 2 * * *"
DEFAULT_INCREMENTAL = "*/5 * * * *"


@dataclass(frozen=True)
class Schedule:
    full: str = DEFAULT_FULL
    incremental: str = DEFAULT_INCREMENTAL

    def __post_init__(self) -> None:
        for name, expression in (("--full", self.full), ("--incremental", self.incremental)):
            if not croniter.is_valid(expression):
                raise ConfigError(f"{name} {expression!r} is not a cron expression "
                                  "(five fields, e.g. '*/5 * * * *')")


def next_run(schedule: Schedule, after: datetime) -> tuple[datetime, str]:
    """Pure: when the next run is due after `after`, and its kind; full wins a tie."""
    full = croniter(schedule.full, after).get_next(datetime)
    incremental = croniter(schedule.incremental, after).get_next(datetime)
    return (full, "full") if full <= incremental else (incremental, "incremental")


def summary_line(summary: RunSummary) -> str:
    what = []
    if summary.snapshot_id:
        what.append(f"snapshot {summary.snapshot_id} ({summary.rows} rows)")
    if summary.segment_id:
        what.append(f"segment {summary.segment_id} ({summary.changes} changes)")
    stages = ", ".join(f"{name}+{len(ids)}" for name, ids in summary.pushed.items())
    return (f"backup {summary.kind}: {', '.join(what) or 'nothing new'}; {summary.bytes} bytes; "
            f"stages {stages or 'none'}; {summary.seconds:.2f} s"
            + (f"; {summary.refreshed}" if summary.refreshed else ""))


def record(summary: RunSummary) -> None:
    metrics.LAST_SUCCESS.labels(summary.kind).set(time.time())
    metrics.DURATION.labels(summary.kind).set(summary.seconds)
    metrics.BYTES.labels(summary.kind).set(summary.bytes)
    metrics.ROWS.labels(summary.kind).set(summary.rows if summary.kind == "full" else summary.changes)
    if summary.slot_safe_wal is not None:
        metrics.SLOT_SAFE_WAL.set(summary.slot_safe_wal)


async def run_once(config: BackupConfig, kind: str) -> RunSummary | None:
    """One scheduled run; logs one line; returns None when skipped or failed (never raises BackupError)."""
    try:
        summary = await run_backup(config, full=kind == "full")
    except LockHeld:
        log.info("backup %s skipped: another run holds the lock", kind)
        return None
    except BackupError as exc:
        metrics.FAILURES.labels(kind).inc()
        log.error("backup %s failed: %s", kind, exc)
        return None
    record(summary)
    log.info(summary_line(summary))
    return summary


async def run_schedule(config: BackupConfig, schedule: Schedule, stop: asyncio.Event,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """Run backups on `schedule` until `stop` is set; return the number of runs attempted."""
    runs = 0
    while not stop.is_set():
        due, kind = next_run(schedule, clock())
        delay = max(0.0, (due - clock()).total_seconds())
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            break
        except TimeoutError:
            pass
        await run_once(config, kind)
        runs += 1
    return runs
