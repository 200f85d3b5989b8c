"""Backups as admin operations: what every stage holds, and a backup run on request.

The backup package does blocking storage I/O (boto3, files), so its work runs in a worker thread
with its own event loop and the API's loop keeps serving. It connects with the owner's URL
(settings.database_url), never through the least-privilege pool.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from api.backup_config import backup_config
from api.settings import Settings
from backup.config import BackupConfig
from backup.errors import BackupError, LockHeld
from backup.inventory import UnitState, inventory
from backup.runner import RunSummary, run_backup
from backup.stages import build_stages
from backup.storage.file import FileRepository

NOT_CONFIGURED = ("no backup repository is configured: set VAXVAULT_BACKUP_URL to "
                  "s3://bucket/prefix or file:///path and restart the API")


@dataclass(frozen=True)
class Listing:
    """Every snapshot and segment any stage knows, oldest first; `stages` in stage order."""

    configured: bool
    stages: tuple[str, ...]
    units: tuple[UnitState, ...]


@dataclass(frozen=True)
class BackupDone:
    summary: RunSummary
    finished_at: datetime


@dataclass(frozen=True)
class BackupBusy:
    message: str


@dataclass(frozen=True)
class BackupNotConfigured:
    message: str = NOT_CONFIGURED


@dataclass(frozen=True)
class BackupFailed:
    message: str


BackupOutcome = BackupDone | BackupBusy | BackupNotConfigured | BackupFailed



def _list(config: BackupConfig) -> Listing:
    stages = build_stages(FileRepository(config.spool_dir), config.primary_url,
                          config.replica_urls, config.s3_endpoint_url)
    return Listing(configured=config.primary_url is not None,
                   stages=tuple(s.name for s in stages), units=tuple(inventory(stages, config.key)))


async def list_backups(settings: Settings) -> Listing:
    """The inventory of every stage. An unreachable stage shows as such, it does not fail the
    listing; a malformed repository URL raises BackupError."""
    return await asyncio.to_thread(_list, backup_config(settings))


async def start_backup(settings: Settings, full: bool) -> BackupOutcome:
    """Run one backup now (full snapshot or incremental segment) and say how it went.

    Exclusive across machines by the backup package's advisory lock: a run that finds it held
    answers BackupBusy. Failures are answers too (BackupFailed), so the caller can audit them.
    """
    config = backup_config(settings)
    if not config.primary_url:
        return BackupNotConfigured()
    try:
        summary = await asyncio.to_thread(lambda: asyncio.run(run_backup(config, full=full)))
    except LockHeld as exc:
        return BackupBusy(str(exc))
    except BackupError as exc:
        return BackupFailed(str(exc))
    return BackupDone(summary, datetime.now().astimezone())
