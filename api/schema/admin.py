"""Resolvers of the admin operations: backups, startBackup, verifyBackups, findLoss, planRestore,
restoreRecords, restoreJob, privacyFreezes.

Each is guarded by the policy table (admin only), audited (action 'backup' or 'restore', refusals
and failures included; restoreJob, a status read, only when it reveals personal data), and
thin: check, call one domain function, present.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import strawberry

from api.domain import (
    backup_admin,
    backup_schedule,
    backup_verify,
    freeze,
    loss_admin,
    restore_admin,
    restore_jobs,
    restore_order,
)
from api.domain.audit import diff_reads
from api.domain.errors import BadUserInput, Refusal
from api.policy import STATUS_ROOTS
from api.schema.admin_types import (
    FindLossResult,
    LossReport,
    PlanRestoreResult,
    RestoreInput,
    RestoreJob,
    RestoreNotConfigured,
    RestorePlan,
    RestoreRecordsResult,
    RestoreTable,
)
from api.schema.backup_types import (
    BackupBusy,
    BackupCompleted,
    BackupKind,
    BackupNotConfigured,
    Backups,
    BackupVerification,
    OperationFailed,
    StartBackupResult,
    VerifyBackupsResult,
)
from api.schema.guard import Info, check_root
from api.schema.types import PrivacyFreeze
from backup.errors import BackupError
from backup.restore.predicate import render


@asynccontextmanager
async def _audited(info: Info, action: str, operation: str,
                   **detail: Any) -> AsyncIterator[dict[str, Any]]:
    """Audit the operation when it ends, with what the body added to `detail`, refusals too;
    a status read (policy.STATUS_ROOTS) only when it revealed personal data."""
    entry: dict[str, Any] = {"operation": operation, **detail}
    try:
        yield entry
    except Refusal as exc:
        entry["outcome"], entry["message"] = "refused", str(exc)
        raise
    except Exception as exc:
        entry["outcome"] = f"error: {type(exc).__name__}"
        raise
    finally:
        if operation not in STATUS_ROOTS or entry.get("revealed"):
            ctx = info.context
            async with ctx.session.savepoint():
                await ctx.audit.record_write(ctx.session, action, [], entry)


def _actor(info: Info) -> str:
    return info.context.principal.sub or "admin"


async def backups(info: Info) -> Backups | None:
    await check_root(info, "backups")
    async with _audited(info, "backup", "backups") as entry:
        listing = await backup_admin.list_backups(info.context.settings)
        entry["units"] = len(listing.units)
    schedule: backup_schedule.BackupSchedule | str
    try:
        schedule = backup_schedule.schedule_report(
            backup_schedule.configured(info.context.settings), listing.units, listing.stages,
            datetime.now(UTC))
    except BadUserInput as exc:  # a bad setting must not hide the listing
        schedule = str(exc)
    return Backups.of(listing, schedule)


async def verify_backups(info: Info, deep: bool = False,
                         id: str | None = None) -> VerifyBackupsResult | None:
    await check_root(info, "verifyBackups")
    async with _audited(info, "backup", "verifyBackups", deep=deep, id=id) as entry:
        try:
            found = await backup_verify.verify_backups(info.context.settings, id, deep)
        except BackupError as exc:
            entry["outcome"], entry["message"] = "failed", str(exc)
            return OperationFailed(message=str(exc))
        if isinstance(found, backup_admin.BackupNotConfigured):
            entry["outcome"] = "not configured"
            return BackupNotConfigured(message=found.message)
        entry.update(outcome="ok" if found.ok else "problems",
                     problems=sum(len(s.problems) for s in found.stages))
        return BackupVerification.of(found)


async def start_backup(info: Info, kind: BackupKind) -> StartBackupResult | None:
    await check_root(info, "startBackup")
    async with _audited(info, "backup", "startBackup", kind=kind.value) as entry:
        outcome = await backup_admin.start_backup(info.context.settings,
                                                  full=kind is BackupKind.FULL)
        entry["outcome"] = type(outcome).__name__
        if isinstance(outcome, backup_admin.BackupDone):
            entry.update(snapshot_id=outcome.summary.snapshot_id,
                         segment_id=outcome.summary.segment_id, changes=outcome.summary.changes,
                         rows=outcome.summary.rows)
            return BackupCompleted.of(outcome)
        entry["message"] = outcome.message
    if isinstance(outcome, backup_admin.BackupBusy):
        return BackupBusy(message=outcome.message)
    if isinstance(outcome, backup_admin.BackupNotConfigured):
        return BackupNotConfigured(message=outcome.message)
    return OperationFailed(message=outcome.message)


RevealArg = Annotated[bool, strawberry.argument(
    description="Show the personal values (name, national ID, phone, birth date) in the diffs "
                "instead of withholding them. An explicit act: audited as a read of each person "
                "shown, which appears in their accessLog.")]


def _reveal_personal(info: Info, table: str, diffs: Iterable[Any],
                     entry: dict[str, Any]) -> None:
    """Restore diffs of recipients show personal values once revealed: note them as reads of
    those people (policy.PERSONAL_PATHS: planRestore.sample, restoreJob.conflicts), and say in
    the operation's own audit entry that it revealed them."""
    reads = diff_reads(table, diffs)
    for recipient_id, fields in reads.items():
        for field_name in fields:
            info.context.audit.note_read(recipient_id, field_name)
    entry["revealed"] = sorted({f for fields in reads.values() for f in fields})
    entry["revealed_recipients"] = len(reads)


async def plan_restore(info: Info, input: RestoreInput,
                       reveal_personal: RevealArg = False) -> PlanRestoreResult | None:
    await check_root(info, "planRestore")
    ctx = info.context
    order = input.to_domain()
    async with _audited(info, "restore", "planRestore", table=order.table,
                        as_of=order.as_of, dry_run=True) as entry:
        if restore_admin.source(ctx.settings) is None:
            entry["outcome"] = "not configured"
            return RestoreNotConfigured(message=backup_admin.NOT_CONFIGURED)
        request = await restore_order.to_request(ctx.settings.require_database_url(), order,
                                                 _actor(info))
        entry["predicate"] = render(request.where) if request.where is not None else None
        outcome = await restore_admin.plan(ctx.settings, request)
        if isinstance(outcome, restore_admin.RestoreFailed):
            entry["outcome"], entry["message"] = "failed", outcome.message
            return OperationFailed(message=outcome.message)
        if isinstance(outcome, restore_admin.RestoreNotConfigured):
            return RestoreNotConfigured(message=outcome.message)
        entry.update(outcome="planned", counts=outcome.counts, snapshot=outcome.snapshot_id)
        if reveal_personal:
            _reveal_personal(info, outcome.table, (*outcome.sample, *outcome.conflicts), entry)
        return RestorePlan.of(outcome, reveal=reveal_personal)


async def restore_records(info: Info, input: RestoreInput) -> RestoreRecordsResult | None:
    await check_root(info, "restoreRecords")
    ctx = info.context
    order = input.to_domain()
    async with _audited(info, "restore", "restoreRecords", table=order.table,
                        as_of=order.as_of) as entry:
        found = restore_admin.source(ctx.settings)
        if found is None:
            entry["outcome"] = "not configured"
            return RestoreNotConfigured(message=backup_admin.NOT_CONFIGURED)
        request = await restore_order.to_request(found.database_url, order, _actor(info))
        entry["predicate"] = render(request.where) if request.where is not None else None
        unreadable = await restore_admin.check_history(found, request)
        if unreadable is not None:
            entry["outcome"], entry["message"] = "failed", unreadable.message
            return OperationFailed(message=unreadable.message)
        job = await restore_jobs.submit(found, request, ctx.request_id)
        entry.update(outcome="started", job_id=job.id)
        return RestoreJob.of(job)


async def restore_job(info: Info, id: strawberry.ID,
                      reveal_personal: RevealArg = False) -> RestoreJob | None:
    await check_root(info, "restoreJob")
    async with _audited(info, "restore", "restoreJob", job_id=str(id)) as entry:
        job = await restore_jobs.get(info.context.session, restore_jobs.parse_job_id(str(id)))
        entry["status"] = job.status
        if reveal_personal:
            _reveal_personal(info, job.table, (job.result or {}).get("conflicts") or [], entry)
        return RestoreJob.of(job, reveal=reveal_personal)


async def find_loss(info: Info, table: RestoreTable, since: datetime | None = None,
                    until: datetime | None = None, bin_seconds: float = 60.0) -> FindLossResult | None:
    await check_root(info, "findLoss")
    async with _audited(info, "restore", "findLoss", table=table.value) as entry:
        found = await loss_admin.report(info.context.settings, table.value, since, until,
                                        timedelta(seconds=bin_seconds))
        if isinstance(found, restore_admin.RestoreNotConfigured):
            entry["outcome"] = "not configured"
            return RestoreNotConfigured(message=found.message)
        if isinstance(found, restore_admin.RestoreFailed):
            entry["outcome"], entry["message"] = "failed", found.message
            return OperationFailed(message=found.message)
        entry.update(outcome="found", windows=len(found.windows))
        return LossReport.of(found)


async def privacy_freezes(info: Info) -> list[PrivacyFreeze] | None:
    await check_root(info, "privacyFreezes")
    return [PrivacyFreeze(record=f) for f in await freeze.active_freezes(info.context.session)]
