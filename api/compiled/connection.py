"""How a compiled read meets the database: two round trips, no explicit transaction.

1. the principal is set for the session (RLS reads it) and the freeze covering it is read:
   the same SQL as api/db/session.py, with session-level instead of transaction-level settings;
2. the one statement that reads and writes the audit row, committed as a whole by itself
   (autocommit): the response exists only once its audit row is committed.

The connections come from a pool of their own (`create_reader_pool`) that nothing else uses
and that skips the RESET ALL on release (a third round trip, ~11% of the path's CPU): every
use of one of its connections starts with statement 1, which sets all four principal settings,
so a principal left on an idle connection is overwritten before anything reads under it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from api.db.pool import ACQUIRE_TIMEOUT_S, create_pool
from api.db.session import _BEGIN_SQL, RequestState, principal_args, request_state
from api.principal import Principal
from api.settings import Settings

SESSION_BEGIN_SQL = _BEGIN_SQL.replace(", true)", ", false)")
if SESSION_BEGIN_SQL.count(", false)") != 4:
    raise RuntimeError("api/db/session.py: _BEGIN_SQL no longer sets the four principal settings "
                       "with set_config(..., true); update api/compiled/connection.py with it")


async def keep_session(conn: Any) -> None:
    """Release without RESET ALL (asyncpg still rolls back a transaction left open): the
    next Reader sets every principal setting before it reads (see the module docstring)."""


async def create_reader_pool(settings: Settings) -> asyncpg.Pool:
    """The compiled path's own pool; only Reader may use its connections."""
    return await create_pool(settings, reset=keep_session)


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
        # No RESET ALL (create_reader_pool): the next Reader overwrites the principal first.
        await self.pool.release(self.conn)

    async def state(self) -> RequestState:
        row = await self.conn.fetchrow(SESSION_BEGIN_SQL, *principal_args(self.principal))
        return request_state(self.principal, row)

    async def read(self, sql: str, args: list[Any]) -> asyncpg.Record:
        return await self.conn.fetchrow(sql, *args)
