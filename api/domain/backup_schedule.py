"""When backups run: the schedule the scheduler follows, its last and next due times, and what
each stage actually holds from the runs so far.

"Last run" is read from the repository, not from a record the scheduler writes: the newest
snapshot and segment per stage are what a restore can use, they are there whichever machine's
scheduler ran (only one runs at a time, under an advisory lock, and any may), they need no
shared file between the scheduler's container and the API's, and they survive the loss of the
database a state table would live in. A failed run leaves nothing, so the newest unit is the
last run that *succeeded*; a full run always cuts a snapshot, so a snapshot older than the last
due full run means that run failed or is still going. An incremental run that finds nothing new
writes no segment, so no such conclusion is drawn for segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from api.domain.errors import BadUserInput
from api.settings import Settings
from backup.errors import ConfigError
from backup.inventory import PENDING, STORED, UnitState
from backup.schedule import DEFAULT_FULL, DEFAULT_INCREMENTAL, Schedule, next_run
from backup.storage.keys import parse_id

_HELD = (STORED, PENDING)
# The unit a run of each kind leaves behind.
_UNIT_OF = {"full": "snapshot", "incremental": "segment"}


@dataclass(frozen=True)
class Newest:
    """The newest snapshot or segment one stage holds (None: it holds none)."""

    stage: str
    unit_id: str | None
    at: datetime | None


@dataclass(frozen=True)
class KindSchedule:
    kind: str                   # full or incremental
    cron: str
    last_due: datetime          # when a run of this kind was last due (at or before now)
    next_due: datetime
    newest: tuple[Newest, ...]  # per stage, in stage order
    late: str | None            # why the last due run is not in the repository, when it is not


@dataclass(frozen=True)
class BackupSchedule:
    full: KindSchedule
    incremental: KindSchedule
    next_kind: str              # the kind of the next run (full wins a tie)
    next_at: datetime


def configured(settings: Settings) -> Schedule:
    """The schedule from VAXVAULT_BACKUP_SCHEDULE_FULL / _INCREMENTAL (defaults otherwise), the
    same the `vaxvault backup schedule` command follows. Raises BadUserInput naming a bad one."""
    full = settings.backup_schedule_full or DEFAULT_FULL
    incremental = settings.backup_schedule_incremental or DEFAULT_INCREMENTAL
    try:
        return Schedule(full=full, incremental=incremental)
    except ConfigError as exc:
        raise BadUserInput(str(exc).replace("--full", "VAXVAULT_BACKUP_SCHEDULE_FULL")
                           .replace("--incremental", "VAXVAULT_BACKUP_SCHEDULE_INCREMENTAL")
                           ) from exc


def _newest(units: tuple[UnitState, ...], unit_kind: str, stage: str) -> Newest:
    held = [u.id for u in units if u.kind == unit_kind and u.states.get(stage) in _HELD]
    if not held:
        return Newest(stage, None, None)
    newest = max(held)  # ids are UTC cut times, so they sort as times
    return Newest(stage, newest, parse_id(newest))


def _kind(kind: str, cron: str, units: tuple[UnitState, ...], stages: tuple[str, ...],
          now: datetime) -> KindSchedule:
    last_due = croniter(cron, now).get_prev(datetime)
    newest = tuple(_newest(units, _UNIT_OF[kind], stage) for stage in stages)
    late = None
    primary = next((n for n in newest if n.stage == "primary"), None)
    if kind == "full" and primary is not None and (primary.at is None or primary.at < last_due):
        since = (f"the newest snapshot there is from {primary.at.isoformat()}" if primary.at
                 else "it holds no snapshot")
        late = (f"the full backup due at {last_due.isoformat()} is not in the primary "
                f"repository ({since}): it failed or is still running; check the scheduler's "
                "log, or start a full backup here")
    return KindSchedule(kind, cron, last_due, croniter(cron, now).get_next(datetime), newest, late)


def schedule_report(schedule: Schedule, units: tuple[UnitState, ...], stages: tuple[str, ...],
                    now: datetime) -> BackupSchedule:
    """Pure: the schedule's last and next due times at `now` (aware), beside the newest units."""
    next_at, next_kind = next_run(schedule, now)
    return BackupSchedule(_kind("full", schedule.full, units, stages, now),
                          _kind("incremental", schedule.incremental, units, stages, now),
                          next_kind, next_at)
