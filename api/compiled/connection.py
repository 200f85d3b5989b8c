"""How a compiled read meets the database: three round trips, no explicit transaction.

1. the principal is set for the session (RLS reads it) and the freeze covering it is read:
   the same SQL as api/db/session.py, with session-level instead of transaction-level settings;
2. the one statement that reads and writes the audit row, committed as a whole by itself
   (autocommit): the response exists only once its audit row is committed;
3. the pool's reset on release (RESET ALL), which clears the principal again.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from api.db.pool import ACQUIRE_TIMEOUT_S
from api.db.session import _BEGIN_SQL, RequestState, principal_args, request_state
from api.principal import Principal

SESSION_BEGIN_SQL = _BEGIN_SQL.replace(", true)", ", false)")
if SESSION_BEGIN_SQL.count(", false)") != 4:
    raise RuntimeError("api/db/session.py: _BEGIN_SQL no longer sets the four principal settings "
                       "with set_config(..., true); update api/compiled/connection.py with it")


class Reader:
    """One request's connection, from the pool until release."""

    def __init__(self, pool: asyncpg.Pool, principal: Principal) -> None:
        self.pool = pool
        self.principal = principal
        self.conn: Any = None

    async def __aenter__(self) -> Reader:
        self.conn = await self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Release resets the session (RESET ALL): the principal does not outlive the request.
        await self.pool.release(self.conn)

    async def state(self) -> RequestState:
        row = await self.conn.fetchrow(SESSION_BEGIN_SQL, *principal_args(self.principal))
        return request_state(self.principal, row)

    async def read(self, sql: str, args: list[Any]) -> asyncpg.Record:
        return await self.conn.fetchrow(sql, *args)
