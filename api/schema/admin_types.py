"""GraphQL types of the admin operations (backups, restore plans, restore jobs), each built from
the record of the domain or backup module that holds the facts."""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from api.domain import backup_admin, backup_schedule, backup_verify, loss_admin
from api.domain.audit import PERSONAL_COLUMNS
from api.domain.restore_jobs import RestoreJob as JobRecord
from api.domain.restore_order import Condition, Operator, RestoreOrder
from backup.inventory import UnitState
from backup.restore.find_loss import LossWindow as LossRecord
from backup.restore.records import ConflictPolicy
from backup.restore.records import RestorePlan as PlanRecord
from backup.restore.records import RowDiff as DiffRecord


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

@strawberry.enum(description="The registry tables a restore may write to.")
class RestoreTable(Enum):
    RECIPIENTS = "recipients"
    DOSES = "doses"
    CENTERS = "centers"
    DISTRICTS = "districts"
    VACCINES = "vaccines"


@strawberry.enum(description="Rows changed again after the damage: SKIP lists them, OVERWRITE "
                             "takes them back to T too.")
class OnConflict(Enum):
    SKIP = "skip"
    OVERWRITE = "overwrite"


FilterOperator = strawberry.enum(Operator, name="FilterOperator", description=(
    "EQ: one value; IN: one or more; BETWEEN: low and high (inclusive); IS_NULL: no value."))


@strawberry.input(description="One condition on a column's value AT T. Values are strings in the "
                              "column's form (42, 2021-10-13, 2021-10-13T08:00:00+06:00) and are "
                              "always compared as values, never read as SQL.")
class RestoreCondition:
    column: str
    operator: FilterOperator  # type: ignore[valid-type]
    values: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Which rows to restore, as of when.")
class RestoreInput:
    as_of: datetime = strawberry.field(description="The point in time, with a UTC offset: "
                                                   "choose it just before the damage.")
    table: RestoreTable
    filter: list[RestoreCondition] = strawberry.field(
        default_factory=list, description="Conditions ANDed together; none = every row.")
    columns: list[str] | None = strawberry.field(
        default=None, description="Compare and write back only these columns (default: all).")
    on_conflict: OnConflict = OnConflict.SKIP
    with_parents: bool = strawberry.field(
        default=False, description="Also restore gone parent rows (the recipient of a dose).")
    sample: int = strawberry.field(default=10, description="Rows in the sample diff (0-100).")

    def to_domain(self) -> RestoreOrder:
        return RestoreOrder(
            table=self.table.value, as_of=self.as_of,
            conditions=tuple(Condition(c.column, Operator(c.operator), tuple(c.values))
                             for c in self.filter),
            columns=tuple(self.columns) if self.columns is not None else None,
            on_conflict=ConflictPolicy(self.on_conflict.value), with_parents=self.with_parents,
            sample_size=self.sample)


@strawberry.type(description="Rows per action: REINSERT (missing now), WRITE_BACK (differs, "
                             "untouched since the damage), CONFLICT (changed again since), "
                             "UNTOUCHED (as at T, or born after T).")
class RestoreCounts:
    reinsert: int
    write_back: int
    conflict: int
    untouched: int

    @classmethod
    def of(cls, counts: dict[str, int]) -> RestoreCounts:
        return cls(reinsert=counts.get("reinsert", 0), write_back=counts.get("write_back", 0),
                   conflict=counts.get("conflict", 0), untouched=counts.get("untouched", 0))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def withheld(table: str, reveal: bool) -> frozenset[str]:
    """The columns of `table` whose values a restore diff withholds unless revealed."""
    return PERSONAL_COLUMNS if table == "recipients" and not reveal else frozenset()


@strawberry.type
class ColumnValue:
    column: str
    value: str | None


@strawberry.type(description="One column of one row: its value now and at T (null = NULL, or no "
                             "row now, or masked).")
class ColumnChange:
    column: str
    now: str | None
    at_t: str | None = strawberry.field(name="atT")
    masked: bool = strawberry.field(
        default=False, description="A personal value withheld: ask again with revealPersonal: true "
                                   "(audited as a read of that person).")


@strawberry.type(description="One row's action, why, and the columns that differ.")
class RowDiff:
    key: list[ColumnValue]
    action: str = strawberry.field(description="reinsert, write_back, conflict or untouched")
    reason: str
    columns: list[ColumnChange]

    @classmethod
    def of(cls, diff: DiffRecord | dict[str, Any], masked: frozenset[str] = frozenset()) -> RowDiff:
        """The diff as shown; the values of `masked` columns are withheld (null, masked)."""
        d: dict[str, Any] = diff if isinstance(diff, dict) else {
            "key": diff.key, "action": diff.action, "reason": diff.reason,
            "columns": diff.columns}
        return cls(key=[ColumnValue(column=k, value=_text(v)) for k, v in d["key"].items()],
                   action=d["action"], reason=d["reason"],
                   columns=[ColumnChange(column=c, now=None, at_t=None, masked=True) if c in masked
                            else ColumnChange(column=c, now=_text(pair[0]), at_t=_text(pair[1]))
                            for c, pair in d["columns"].items()])


@strawberry.type
class TableCount:
    table: str
    rows: int


@strawberry.type(description="A dry run: what restoreRecords would do now. Nothing was written.")
class RestorePlan:
    table: str
    as_of: datetime
    predicate: str | None = strawberry.field(description="The filter as compiled (canonical).")
    snapshot_id: str
    segments: int
    chunks_read: int
    chunks_total: int
    matched: int = strawberry.field(description="Rows at T that match the filter.")
    counts: RestoreCounts
    sample: list[RowDiff]
    conflicts: list[RowDiff] = strawberry.field(description="The first 100 conflicts.")
    conflicts_total: int
    parents: list[TableCount]
    used_live_log: bool
    warnings: list[str] = strawberry.field(
        description="What the restore cannot vouch for (a hole in the history after T, times it "
                    "cannot order, a history that ends before T); read them before running it.")

    @classmethod
    def of(cls, plan: PlanRecord, reveal: bool = False) -> RestorePlan:
        masked = withheld(plan.table, reveal)
        return cls(table=plan.table, as_of=plan.as_of, predicate=plan.predicate,
                   snapshot_id=plan.snapshot_id, segments=plan.segments,
                   chunks_read=plan.chunks_read, chunks_total=plan.chunks_total,
                   matched=plan.matched, counts=RestoreCounts.of(plan.counts),
                   sample=[RowDiff.of(d, masked) for d in plan.sample],
                   conflicts=[RowDiff.of(d, masked) for d in plan.conflicts],
                   conflicts_total=plan.conflicts_total,
                   parents=[TableCount(table=t, rows=n) for t, n in plan.parents.items()],
                   used_live_log=plan.used_live_log, warnings=list(plan.warnings))


@strawberry.enum
class RestoreJobStatus(Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="A restore running in the background; poll restoreJob(id).")
class RestoreJob:
    id: strawberry.ID
    status: RestoreJobStatus
    progress: str = strawberry.field(description="The current step, in words.")
    fraction: float = strawberry.field(
        description="How far the restore has come, 0 to 1: the share of its steps behind it "
                    "(steps differ in length, so it is not a share of the time). 1 once SUCCEEDED.")
    table: str
    as_of: datetime
    predicate: str | None
    columns: list[str] | None
    on_conflict: OnConflict
    with_parents: bool
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: RestoreCounts | None = strawberry.field(description="Once SUCCEEDED.")
    matched: int | None
    reinserted: int | None
    written_back: int | None
    overwritten: int | None
    restored: int | None
    conflicts_total: int | None
    conflicts: list[RowDiff] | None = strawberry.field(description="The first 20 conflicts.")
    snapshot_id: str | None
    seconds: float | None = strawberry.field(description="How long the restore took.")
    audit_entry_id: strawberry.ID | None = strawberry.field(
        description="The audit_log entry the restore wrote in its own transaction.")
    error: str | None = strawberry.field(description="Why it FAILED, and what to do.")
    warnings: list[str] | None = strawberry.field(
        description="Once SUCCEEDED: what the restore could not vouch for (see RestorePlan.warnings).")

    @classmethod
    def of(cls, job: JobRecord, reveal: bool = False) -> RestoreJob:
        result = job.result or {}
        masked = withheld(job.table, reveal)
        audit_id = result.get("audit_id")
        return cls(
            id=strawberry.ID(str(job.id)), status=RestoreJobStatus(job.status),
            progress=job.progress, fraction=job.fraction, table=job.table, as_of=job.as_of,
            predicate=job.request.get("predicate"), columns=job.request.get("columns"),
            on_conflict=OnConflict(job.request.get("on_conflict", "skip")),
            with_parents=bool(job.request.get("with_parents")), requested_by=job.requested_by,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            counts=RestoreCounts.of(result["counts"]) if "counts" in result else None,
            matched=result.get("matched"), reinserted=result.get("reinserted"),
            written_back=result.get("written_back"), overwritten=result.get("overwritten"),
            restored=result.get("restored"), conflicts_total=result.get("conflicts_total"),
            conflicts=[RowDiff.of(c, masked) for c in result["conflicts"]] if "conflicts" in result
            else None,
            snapshot_id=result.get("snapshot_id"), seconds=result.get("seconds"),
            audit_entry_id=strawberry.ID(str(audit_id)) if audit_id is not None else None,
            error=job.error, warnings=result.get("warnings") if job.result is not None else None)


@strawberry.type(description="No backup repository is configured to restore from "
                             "(VAXVAULT_BACKUP_URL).")
class RestoreNotConfigured:
    message: str


PlanRestoreResult = Annotated[RestorePlan | RestoreNotConfigured | OperationFailed,
                              strawberry.union("PlanRestoreResult")]
RestoreRecordsResult = Annotated[RestoreJob | RestoreNotConfigured | OperationFailed,
                                 strawberry.union("RestoreRecordsResult")]


# --- find loss ---------------------------------------------------------------------------------

@strawberry.type(description="Changes of one signal (delete, truncate, update COLUMN) in one time "
                             "bin: a bar of the loss chart.")
class LossBucket:
    start: datetime
    signal: str
    count: int
    set_to_null: int = strawberry.field(description="Of an update signal: how many set it to NULL.")


@strawberry.type(description="A burst of unusual deletes, truncates or updates of one column, "
                             "with the T to restore as of: just before its largest transaction.")
class LossWindow:
    signal: str
    start: datetime
    end: datetime
    count: int
    set_to_null: int
    transactions: int
    usual_per_bin: float = strawberry.field(description="The signal's median changes per minute.")
    example_keys: list[list[ColumnValue]]
    proposed_as_of: datetime

    @classmethod
    def of(cls, window: LossRecord) -> LossWindow:
        return cls(signal=window.signal, start=window.start, end=window.end, count=window.count,
                   set_to_null=window.set_to_null, transactions=window.transactions,
                   usual_per_bin=window.usual_per_bin,
                   example_keys=[[ColumnValue(column=k, value=_text(v)) for k, v in key.items()]
                                 for key in window.example_keys],
                   proposed_as_of=window.proposed_as_of)


@strawberry.type(description="The shipped changes of one table over time, and its bursts of loss "
                             "(what `vaxvault restore find-loss` reports), largest first.")
class LossReport:
    table: str
    bin_seconds: float
    buckets: list[LossBucket]
    windows: list[LossWindow]

    @classmethod
    def of(cls, found: loss_admin.LossReport) -> LossReport:
        return cls(table=found.table, bin_seconds=found.bin.total_seconds(),
                   buckets=[LossBucket(start=b.start, signal=b.signal, count=b.count,
                                       set_to_null=b.set_to_null) for b in found.buckets],
                   windows=[LossWindow.of(w) for w in found.windows])


FindLossResult = Annotated[LossReport | RestoreNotConfigured | OperationFailed,
                           strawberry.union("FindLossResult")]
