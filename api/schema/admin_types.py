"""GraphQL types of the restore admin operations (restore plans, restore jobs, loss reports), each
built from the record of the domain or backup module that holds the facts. The backup operations'
types are in api/schema/backup_types.py."""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from api.domain import loss_admin
from api.domain.audit import PERSONAL_COLUMNS
from api.domain.restore_jobs import RestoreJob as JobRecord
from api.domain.restore_order import Condition, Operator, RestoreOrder
from api.schema.backup_types import OperationFailed
from backup.restore.find_loss import LossWindow as LossRecord
from backup.restore.records import ConflictPolicy
from backup.restore.records import RestorePlan as PlanRecord
from backup.restore.records import RowDiff as DiffRecord


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
                             "with the T to restore as of: just before its largest transaction. "
                             "Or, signal 'rows gone between snapshots (segments missing)': rows "
                             "fewer in a snapshot than in the one before, with no segment between "
                             "them (row counts only; T is the earlier snapshot's cut).")
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


@strawberry.type(description="The changes of one table over time, from the shipped segments and "
                             "the live change log, and its bursts of loss (what `vaxvault restore "
                             "find-loss` reports), largest first.")
class LossReport:
    table: str
    bin_seconds: float
    buckets: list[LossBucket]
    windows: list[LossWindow]
    unshipped_changes: int = strawberry.field(
        description="Changes read from the live change log that no incremental backup has shipped yet.")
    warnings: list[str] = strawberry.field(
        description="What could not be read, e.g. the live change log when the database is down.")

    @classmethod
    def of(cls, found: loss_admin.LossReport) -> LossReport:
        return cls(table=found.table, bin_seconds=found.bin.total_seconds(),
                   buckets=[LossBucket(start=b.start, signal=b.signal, count=b.count,
                                       set_to_null=b.set_to_null) for b in found.buckets],
                   windows=[LossWindow.of(w) for w in found.windows],
                   unshipped_changes=found.unshipped, warnings=list(found.warnings))


FindLossResult = Annotated[LossReport | RestoreNotConfigured | OperationFailed,
                           strawberry.union("FindLossResult")]
