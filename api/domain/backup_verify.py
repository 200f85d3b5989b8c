"""Verifying the backups as an admin operation: every stage checked on its own, so the answer
says per stage what was checked and which objects failed, in the verify module's own words."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from api.backup_config import backup_config
from api.domain.backup_admin import BackupNotConfigured
from api.domain.errors import BadUserInput
from api.settings import Settings
from backup.config import BackupConfig
from backup.errors import SnapshotNotFound
from backup.stages import build_stages
from backup.storage.file import FileRepository
from backup.verify import Problem, verify


@dataclass(frozen=True)
class StageVerdict:
    stage: str
    url: str
    units: int
    objects: int
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class Verification:
    deep: bool
    unit_id: str | None
    checked_at: datetime
    stages: tuple[StageVerdict, ...]

    @property
    def ok(self) -> bool:
        return not any(s.problems for s in self.stages)


def _verify(config: BackupConfig, unit_id: str | None, deep: bool) -> tuple[StageVerdict, ...]:
    stages = build_stages(FileRepository(config.spool_dir), config.primary_url,
                          config.replica_urls, config.s3_endpoint_url)
    verdicts = []
    for stage in stages:
        try:
            report = verify([stage], unit_id, deep, config.key)
        except SnapshotNotFound:  # this stage does not hold that unit: the listing says so
            verdicts.append(StageVerdict(stage.name, stage.repo.url, 0, 0, ()))
            continue
        verdicts.append(StageVerdict(stage.name, stage.repo.url, report.units, report.objects,
                                     report.problems))
    if unit_id is not None and not any(v.units for v in verdicts):
        raise BadUserInput(f"id: no committed snapshot or segment {unit_id!r} at any stage; "
                           "the Backups list shows the ids")
    return tuple(verdicts)


async def verify_backups(settings: Settings, unit_id: str | None,
                         deep: bool) -> Verification | BackupNotConfigured:
    """Check every committed unit (or only `unit_id`) at every stage, as `vaxvault backup
    verify` does; problems are in the answer. Raises BadUserInput for an id no stage holds,
    BackupError for a malformed repository URL."""
    config = backup_config(settings)
    if not config.primary_url:
        return BackupNotConfigured()
    verdicts = await asyncio.to_thread(_verify, config, unit_id, deep)
    return Verification(deep, unit_id, datetime.now().astimezone(), verdicts)

