"""Resolvers of the admin operations: backups, startBackup, findLoss, planRestore, restoreRecords,
restoreJob, privacyFreezes.

Each is guarded by the policy table (admin only), audited (action 'backup' or 'restore', refusals
and failures included), and thin: check, call one domain function, present.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import strawberry

from api.domain import backup_admin, freeze, loss_admin, restore_admin, restore_jobs, restore_order
from api.domain.audit import diff_reads
from api.domain.errors import Refusal
from api.schema.admin_types import (
    BackupBusy,
    BackupCompleted,
    BackupKind,
    BackupNotConfigured,
    Backups,
    FindLossResult,
    LossReport,
    OperationFailed,
    PlanRestoreResult,
    RestoreInput,
    RestoreJob,
    RestoreNotConfigured,
    RestorePlan,
    RestoreRecordsResult,
    RestoreTable,
    StartBackupResult,
)
from api.schema.guard import Info, check_root
from api.schema.types import PrivacyFreeze
from backup.restore.predicate import render


@asynccontextmanager
async def _audited(info: Info, action: str, operation: str,
                   **detail: Any) -> AsyncIterator[dict[str, Any]]:
    """Audit the operation when it ends, with what the body added to `detail`, refusals too."""
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
    return Backups.of(listing)


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


def _note_personal_reads(info: Info, table: str, diffs: Iterable[Any]) -> None:
    """Restore diffs of recipients show personal values: note them as reads of those people
    (policy.PERSONAL_PATHS: planRestore.sample, restoreJob.conflicts)."""
    for recipient_id, fields in diff_reads(table, diffs).items():
        for field_name in fields:
            info.context.audit.note_read(recipient_id, field_name)


async def plan_restore(info: Info, input: RestoreInput) -> PlanRestoreResult | None:
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
        _note_personal_reads(info, outcome.table, (*outcome.sample, *outcome.conflicts))
        return RestorePlan.of(outcome)


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


async def restore_job(info: Info, id: strawberry.ID) -> RestoreJob | None:
    await check_root(info, "restoreJob")
    async with _audited(info, "restore", "restoreJob", job_id=str(id)) as entry:
        job = await restore_jobs.get(info.context.session, restore_jobs.parse_job_id(str(id)))
        entry["status"] = job.status
        _note_personal_reads(info, job.table, (job.result or {}).get("conflicts") or [])
        return RestoreJob.of(job)


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
