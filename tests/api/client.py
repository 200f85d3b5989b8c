"""Running GraphQL operations as a principal against a real database, without HTTP.

The schema runs exactly as in the server (same extensions, same request lifecycle); only the
transport is skipped, so hundreds of role x field checks stay fast.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from api.domain.coverage import CoverageCache
from api.principal import Principal, Role
from api.schema import schema
from api.schema.context import Context
from api.schema.count_cache import CountCache
from api.settings import Settings


@dataclass(frozen=True)
class Result:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]

    def codes(self) -> dict[str, str | None]:
        """path (dotted) -> extensions.code of each error."""
        return {".".join(str(p) for p in e.get("path") or []): (e.get("extensions") or {})
                .get("code") for e in self.errors}


async def run(pool: asyncpg.Pool, settings: Settings, principal: Principal, query: str,
              variables: dict[str, Any] | None = None, request_id: str | None = None,
              coverage_cache: CoverageCache | None = None,
              count_cache: CountCache | None = None) -> Result:
    context = Context(pool=pool, settings=settings, principal=principal,
                      request_id=request_id or uuid.uuid4().hex, coverage_cache=coverage_cache,
                      count_cache=count_cache)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    errors = [e.formatted for e in result.errors or []]
    return Result(data=result.data, errors=errors)


def principal(role: Role, *, sub: str | None = None, center_id: int | None = None,
              district_id: int | None = None) -> Principal:
    defaults = {Role.ADMIN: "admin-1", Role.AUDITOR: "auditor-1",
                Role.CENTER_STAFF: "nurse-1", Role.DISTRICT_OFFICER: "officer-1"}
    return Principal(role=role, sub=sub or defaults.get(role), center_id=center_id,
                     district_id=district_id)
