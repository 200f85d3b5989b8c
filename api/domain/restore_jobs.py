"""Restore jobs: a restore started over GraphQL runs in the background of the process that accepted
it; its state lives in `restore_jobs`, so any API process can answer for it.

The runner writes the job's state with its own owner connection and renews a heartbeat while the
restore runs; a job whose heartbeat stopped (its process died) reads as FAILED. The restore itself
is one transaction, so such a job either restored everything or nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from api.db.connect import connect
from api.db.session import Session
from api.domain.errors import BadUserInput, NotFound
from api.domain.restore_admin import Source, explain, in_thread
from api.errors import VaxvaultError
from api.fields import is_id
from backup.errors import BackupError
from backup.restore.predicate import render
from backup.restore.records import RestoreReport, RestoreRequest, RestoreStep, restore_records

log = logging.getLogger("vaxvault.restore_jobs")

HEARTBEAT_S = 5.0
STALE_AFTER_S = 60
# Keeps each running job's task referenced until it ends (the loop holds only weak references).
_RUNNING: set[asyncio.Task[None]] = set()

_SELECT = f"""
SELECT id, table_name, as_of, request, requested_by, created_at, started_at, finished_at,
       heartbeat_at, result,
       CASE WHEN status IN ('pending', 'running')
                 AND heartbeat_at < now() - interval '{STALE_AFTER_S} seconds'
            THEN 'failed' ELSE status END AS status,
       CASE WHEN status IN ('pending', 'running')
                 AND heartbeat_at < now() - interval '{STALE_AFTER_S} seconds'
            THEN 'stopped' ELSE progress END AS progress, fraction,
       CASE WHEN status IN ('pending', 'running')
                 AND heartbeat_at < now() - interval '{STALE_AFTER_S} seconds'
            THEN 'the API process running this job stopped (last heartbeat ' || heartbeat_at
                 || '); the restore is one transaction, so it committed fully or not at all: '
                 || 'run planRestore to see what is left to restore'
            ELSE error END AS error
FROM restore_jobs WHERE id = $1
"""


@dataclass(frozen=True)
class RestoreJob:
    id: int
    status: str                 # pending, running, succeeded, failed
    progress: str
    fraction: float             # 0..1: the share of the restore's steps done (1 once succeeded)
    table: str
    as_of: datetime
    request: dict[str, Any]
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None


def _describe(request: RestoreRequest) -> dict[str, Any]:
    return {"predicate": render(request.where) if request.where is not None else None,
            "columns": list(request.columns) if request.columns else None,
            "on_conflict": request.on_conflict.value, "with_parents": request.with_parents}


def _record(row: asyncpg.Record) -> RestoreJob:
    return RestoreJob(id=row["id"], status=row["status"], progress=row["progress"],
                      fraction=row["fraction"],
                      table=row["table_name"], as_of=row["as_of"],
                      request=json.loads(row["request"]), requested_by=row["requested_by"],
                      created_at=row["created_at"], started_at=row["started_at"],
                      finished_at=row["finished_at"],
                      result=json.loads(row["result"]) if row["result"] else None,
                      error=row["error"])


def parse_job_id(value: str) -> int:
    if not is_id(value):
        raise BadUserInput(f"id: {value!r} is not a restore job id (a whole number)")
    return int(value)


async def get(session: Session, job_id: int) -> RestoreJob:
    """The job as any process sees it; NotFound when there is none (or the role may not see it)."""
    row = await session.fetchrow(_SELECT, job_id)
    if row is None:
        raise NotFound(f"no restore job {job_id}")
    return _record(row)


async def submit(found: Source, request: RestoreRequest, request_id: str) -> RestoreJob:
    """Record a PENDING job and start it in the background of this process; return it."""
    conn = await connect(found.database_url)
    try:
        job_id = await conn.fetchval(
            "INSERT INTO restore_jobs (table_name, as_of, request, requested_by, request_id) "
            "VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING id", request.table, request.as_of,
            json.dumps(_describe(request)), request.actor, request_id)
        row = await conn.fetchrow(_SELECT, job_id)
    finally:
        await conn.close()
    task = asyncio.create_task(_run(found, job_id, request), name=f"restore-job-{job_id}")
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return _record(row)


async def wait_all() -> None:
    """Wait for the jobs this process is running (for an orderly shutdown)."""
    loop = asyncio.get_running_loop()
    while mine := [task for task in _RUNNING if task.get_loop() is loop]:
        await asyncio.gather(*mine, return_exceptions=True)


async def _run(found: Source, job_id: int, request: RestoreRequest) -> None:
    try:
        conn = await connect(found.database_url)
    except VaxvaultError as exc:
        log.error("restore job %s could not start: %s", job_id, exc)
        return
    try:
        await conn.execute(
            "UPDATE restore_jobs SET status = 'running', started_at = now(), heartbeat_at = now(), "
            "progress = $2 WHERE id = $1", job_id,
            f"restoring {request.table} as of {request.as_of.isoformat()} in one transaction")
        steps: asyncio.Queue[RestoreStep] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def told(step: RestoreStep) -> None:  # in the restore's thread: hand over to this loop
            loop.call_soon_threadsafe(steps.put_nowait, step)

        request = replace(request, on_step=told)
        work = asyncio.ensure_future(in_thread(
            lambda: restore_records(found.database_url, found.repo, found.key, request)))
        await _follow(conn, job_id, work, steps)
        status, result, error = _outcome(work)
        await conn.execute(
            "UPDATE restore_jobs SET status = $2, progress = $3, result = $4::jsonb, error = $5, "
            "fraction = CASE WHEN $2 = 'succeeded' THEN 1 ELSE fraction END, "
            "finished_at = now(), heartbeat_at = now() WHERE id = $1", job_id, status,
            "done" if status == "succeeded" else "failed",
            json.dumps(result, default=str) if result is not None else None, error)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The job's row cannot be written; its heartbeat stops, so it reads as failed.
        log.error("restore job %s lost its state connection: %s", job_id, exc)
    finally:
        await conn.close()


async def _follow(conn: asyncpg.Connection, job_id: int, work: asyncio.Future[RestoreReport],
                  steps: asyncio.Queue[RestoreStep]) -> None:
    """Until the restore ends: write each step it starts as the job's progress (a write per
    step, so restoreJob moves as the restore does), and renew the heartbeat while a step is long."""
    while not work.done():
        told: asyncio.Future[RestoreStep] = asyncio.ensure_future(steps.get())
        waited: set[asyncio.Future[Any]] = {work, told}
        await asyncio.wait(waited, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
        if told.done():
            step = told.result()
            await conn.execute(
                "UPDATE restore_jobs SET progress = $2, fraction = $3, heartbeat_at = now() "
                "WHERE id = $1", job_id,
                f"step {step.done + 1} of {step.total}: {step.words}", step.fraction)
            continue
        told.cancel()
        if not work.done():
            await conn.execute("UPDATE restore_jobs SET heartbeat_at = now() WHERE id = $1", job_id)


def _outcome(work: asyncio.Future[RestoreReport]) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        report = work.result()
    except BackupError as exc:
        return "failed", None, f"nothing was restored: {explain(exc)}"
    except Exception as exc:  # a bug must still end the job, with no internals shown
        log.exception("restore job failed unexpectedly")
        return "failed", None, f"nothing was restored: unexpected {type(exc).__name__}; see the API log"
    return "succeeded", result_of(report), None


def result_of(report: RestoreReport) -> dict[str, Any]:
    plan = report.plan
    return {"counts": plan.counts, "matched": plan.matched, "snapshot_id": plan.snapshot_id,
            "segments": plan.segments, "chunks_read": plan.chunks_read,
            "chunks_total": plan.chunks_total, "conflicts_total": plan.conflicts_total,
            "parents": plan.parents, "predicate": plan.predicate,
            "reinserted": report.reinserted, "written_back": report.written_back,
            "overwritten": report.overwritten, "restored": report.restored,
            "audit_id": report.audit_id, "seconds": report.seconds, "timings": report.timings,
            "conflicts": [asdict(c) for c in plan.conflicts[:20]], "warnings": list(plan.warnings)}
