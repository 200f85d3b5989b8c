"""Running one read operation through both paths, and what each left in the audit log."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from api.compiled.compiler import Compiler
from api.principal import Principal
from api.schema import schema
from api.settings import Settings
from tests.api.client import run

COMPILER = Compiler(schema, production=False)
AUDIT_COLUMNS = ("actor_sub, actor_role, actor_center_id, actor_district_id, action, operation, "
                 "recipient_ids, fields, detail")


@dataclass(frozen=True)
class Outcome:
    data: Any
    errors: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]


def _errors(errors: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Errors as comparable tuples; their order follows resolver timing, so sorted."""
    return sorted((e["message"], json.dumps(e.get("path")), json.dumps(e.get("locations")),
                   (e.get("extensions") or {}).get("code")) for e in errors)


async def _audit(owner: asyncpg.Connection, request_id: str) -> list[tuple[Any, ...]]:
    rows = await owner.fetch(f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE request_id = $1 "
                             "ORDER BY id", request_id)
    return [tuple(r) for r in rows]


async def strawberry(pool: asyncpg.Pool, settings: Settings, owner: asyncpg.Connection,
                     principal: Principal, query: str, variables: dict[str, Any],
                     operation: str | None = None) -> Outcome:
    request_id = uuid.uuid4().hex
    if operation is not None:
        result = await schema.execute(query, variable_values=variables, operation_name=operation,
                                      context_value=_context(pool, settings, principal, request_id))
        data, errors = result.data, [dict(e.formatted) for e in result.errors or []]
    else:
        got = await run(pool, settings, principal, query, variables, request_id=request_id)
        data, errors = got.data, got.errors
    return Outcome(data, _errors(errors), await _audit(owner, request_id))


def _context(pool: asyncpg.Pool, settings: Settings, principal: Principal,
             request_id: str) -> Any:
    from api.schema.context import Context

    return Context(pool=pool, settings=settings, principal=principal, request_id=request_id)


async def compiled(pool: asyncpg.Pool, owner: asyncpg.Connection, principal: Principal,
                   query: str, variables: dict[str, Any],
                   operation: str | None = None) -> Outcome | None:
    """The compiled path's outcome; None when it hands the operation to strawberry."""
    request_id = uuid.uuid4().hex
    answer = await COMPILER.answer(pool, principal, request_id, query, operation, variables)
    if answer is None:
        return None
    body = json.loads(answer.body)
    return Outcome(body["data"], _errors(body.get("errors", [])), await _audit(owner, request_id))
