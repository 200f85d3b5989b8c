"""GraphQL types of the backup admin operations (backups, startBackup, verifyBackups): what the
stages hold, the schedule, verification, and the answers a run or a check can give."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from api.domain import backup_admin, backup_schedule, backup_verify
from backup.inventory import UnitState


@strawberry.enum(description="FULL: a consistent snapshot of every table (and the segment up to "
                             "it). INCREMENTAL: the changes since the last run.")
class BackupKind(Enum):
    FULL = "full"
    INCREMENTAL = "incremental"


@strawberry.enum(description="A snapshot or segment at one stage.")
class StageState(Enum):
    STORED = "stored"
    PENDING = strawberry.enum_value("pending", description="Committed in the spool, waiting "
                                                           "for upload.")
    PARTIAL = strawberry.enum_value("partial", description="Objects without a manifest (an "
                                                           "interrupted run; the next run "
                                                           "removes them).")
    MISSING = "missing"
    UNREACHABLE = "unreachable"
    REFUSED = strawberry.enum_value("refused", description="Its manifest fails authentication "
                                                           "with the key (forged or corrupted).")
    ORPHAN = strawberry.enum_value("orphan", description="A stored segment that no snapshot at "
                                                         "this stage reaches: it restores nothing.")
    RELEASED = strawberry.enum_value("-", description="Not in the spool: released once every "
                                                      "stage stored it.")


@strawberry.type
class StageHolding:
    stage: str
    state: StageState


@strawberry.type(description="One snapshot or segment and its state at every stage.")
class BackupUnit:
    kind: str = strawberry.field(description="snapshot or segment")
    id: str
    rows: int = strawberry.field(description="Table rows of a snapshot, changes of a segment.")
    bytes: float = strawberry.field(description="Stored bytes (a Float: GraphQL Int is 32-bit).")
    stages: list[StageHolding]

    @classmethod
    def of(cls, unit: UnitState) -> BackupUnit:
        return cls(kind=unit.kind, id=unit.id, rows=unit.rows, bytes=float(unit.bytes),
                   stages=[StageHolding(stage=name, state=StageState(state))
                           for name, state in unit.states.items()])


@strawberry.type(description="The newest snapshot or segment one stage holds.")
class NewestUnit:
    stage: str
    id: str | None = strawberry.field(description="Null: the stage holds none.")
    at: datetime | None = strawberry.field(description="When it was cut.")


@strawberry.type(description="One kind of scheduled run: its cron expression, when it was last "
                             "and is next due, and the newest unit of that kind at each stage "
                             "(the last run that succeeded: a failed run leaves nothing).")
class ScheduledRun:
    kind: BackupKind
    cron: str
    last_due: datetime
    next_due: datetime
    newest: list[NewestUnit]
    late: str | None = strawberry.field(
        description="Set when the last due full run is not in the primary repository: why, and "
                    "what to do. (An incremental run with nothing new leaves no segment, so "
                    "none is inferred for incremental runs.)")

    @classmethod
    def of(cls, run: backup_schedule.KindSchedule) -> ScheduledRun:
        return cls(kind=BackupKind(run.kind), cron=run.cron, last_due=run.last_due,
                   next_due=run.next_due, late=run.late,
                   newest=[NewestUnit(stage=n.stage, id=n.unit_id, at=n.at) for n in run.newest])


@strawberry.type(description="The schedule `vaxvault backup schedule` follows "
                             "(VAXVAULT_BACKUP_SCHEDULE_FULL / _INCREMENTAL, or its defaults).")
class BackupScheduleInfo:
    full: ScheduledRun
    incremental: ScheduledRun
    next_kind: BackupKind = strawberry.field(description="The kind of the next run.")
    next_at: datetime

    @classmethod
    def of(cls, found: backup_schedule.BackupSchedule) -> BackupScheduleInfo:
        return cls(full=ScheduledRun.of(found.full), incremental=ScheduledRun.of(found.incremental),
                   next_kind=BackupKind(found.next_kind), next_at=found.next_at)


@strawberry.type(description="What every backup stage holds, oldest first.")
class Backups:
    configured: bool = strawberry.field(description="False when VAXVAULT_BACKUP_URL is not set.")
    stages: list[str] = strawberry.field(description="spool, primary, replica-1, ... in order.")
    units: list[BackupUnit]
    schedule: BackupScheduleInfo | None = strawberry.field(
        description="Last and next scheduled runs; null when the schedule's settings are not "
                    "cron expressions (scheduleProblem says which).")
    schedule_problem: str | None

    @classmethod
    def of(cls, listing: backup_admin.Listing,
           schedule: backup_schedule.BackupSchedule | str) -> Backups:
        return cls(configured=listing.configured, stages=list(listing.stages),
                   units=[BackupUnit.of(u) for u in listing.units],
                   schedule=None if isinstance(schedule, str) else BackupScheduleInfo.of(schedule),
                   schedule_problem=schedule if isinstance(schedule, str) else None)


@strawberry.type(description="An object (or manifest) that failed verification, and why.")
class VerifyProblem:
    key: str
    reason: str


@strawberry.type(description="What verification checked at one stage and what failed there.")
class StageVerification:
    stage: str
    url: str
    units: int = strawberry.field(description="Snapshots and segments checked.")
    objects: int = strawberry.field(description="Objects checked (size and SHA-256; with deep, "
                                                "decrypted, decompressed and re-counted too).")
    ok: bool
    problems: list[VerifyProblem]

    @classmethod
    def of(cls, verdict: backup_verify.StageVerdict) -> StageVerification:
        return cls(stage=verdict.stage, url=verdict.url, units=verdict.units,
                   objects=verdict.objects, ok=not verdict.problems,
                   problems=[VerifyProblem(key=p.key, reason=p.reason) for p in verdict.problems])


@strawberry.type(description="The result of verifyBackups, per stage.")
class BackupVerification:
    ok: bool
    deep: bool
    id: str | None = strawberry.field(description="The unit checked; null: every unit.")
    checked_at: datetime
    stages: list[StageVerification]

    @classmethod
    def of(cls, found: backup_verify.Verification) -> BackupVerification:
        return cls(ok=found.ok, deep=found.deep, id=found.unit_id, checked_at=found.checked_at,
                   stages=[StageVerification.of(v) for v in found.stages])


@strawberry.type
class StagePush:
    stage: str
    ids: list[str]


@strawberry.type(description="The backup ran: what it cut and where it was stored (verified).")
class BackupCompleted:
    kind: BackupKind
    snapshot_id: str | None
    segment_id: str | None
    changes: int
    rows: int
    bytes: float
    seconds: float
    pushed: list[StagePush]
    finished_at: datetime

    @classmethod
    def of(cls, done: backup_admin.BackupDone) -> BackupCompleted:
        s = done.summary
        return cls(kind=BackupKind(s.kind), snapshot_id=s.snapshot_id, segment_id=s.segment_id,
                   changes=s.changes, rows=s.rows, bytes=float(s.bytes), seconds=s.seconds,
                   pushed=[StagePush(stage=k, ids=v) for k, v in s.pushed.items()],
                   finished_at=done.finished_at)


@strawberry.type(description="Another backup run holds the lock; try again when it finishes.")
class BackupBusy:
    message: str


@strawberry.type(description="No backup repository is configured (VAXVAULT_BACKUP_URL).")
class BackupNotConfigured:
    message: str


@strawberry.type(description="The backup or restore failed; `message` says where and what to do. "
                             "A backup that could not reach a stage keeps its data in the spool.")
class OperationFailed:
    message: str


StartBackupResult = Annotated[BackupCompleted | BackupBusy | BackupNotConfigured | OperationFailed,
                              strawberry.union("StartBackupResult")]
VerifyBackupsResult = Annotated[BackupVerification | BackupNotConfigured | OperationFailed,
                                strawberry.union("VerifyBackupsResult")]


# --- restore -----------------------------------------------------------------------------------
