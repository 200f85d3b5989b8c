"""The audit entry of a restore: who, when, T, table, predicate and counts, in the same transaction.

vaxvault databases keep an append-only `audit_log`; a database without one gets no entry (the
backup package works on any PostgreSQL schema).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from backup.restore.asof import AsOfImage
    from backup.restore.records import RestorePlan, RestoreRequest

AUDIT_TABLE = "public.audit_log"


async def write_audit(conn: asyncpg.Connection, request: RestoreRequest, plan: RestorePlan,
                      as_of_image: AsOfImage, reinserted: int, written_back: int) -> int | None:
    """Append the restore's audit row and return its id (None when there is no audit table)."""
    if await conn.fetchval("SELECT to_regclass($1)", AUDIT_TABLE) is None:
        return None
    detail = {"as_of": request.as_of.isoformat(), "table": plan.table, "predicate": plan.predicate,
              "columns": list(request.columns) if request.columns else None,
              "on_conflict": request.on_conflict.value, "with_parents": request.with_parents,
              "snapshot": plan.snapshot_id, "segments": plan.segments, "counts": plan.counts,
              "reinserted": reinserted, "written_back": written_back, "parents": plan.parents,
              "chunks_read": as_of_image.chunks_read, "chunks_total": as_of_image.chunks_total}
    audit_id: int = await conn.fetchval(
        f"INSERT INTO {AUDIT_TABLE} (actor_sub, actor_role, action, operation, detail) "
        "VALUES ($1, $2, 'restore', 'restore records', $3::jsonb) RETURNING id",
        request.actor, request.actor_role, json.dumps(detail, default=str))
    return audit_id
