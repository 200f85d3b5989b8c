"""How a compiled read meets the database: one statement, one round trip, committed by itself.

The statement (api/compiled/statement.py) sets the principal for its own transaction
(`set_config(..., true)`, api/db/session.py's _BEGIN_SQL), reads the freezes that bind it,
builds the response and writes the audit row; autocommit commits it as a whole before the row
comes back, so the response exists only once its audit row is committed.

The connections come from a pool of their own (`create_reader_pool`) that skips the RESET ALL
on release, which would be a second round trip: the principal's settings are transaction-local
and end with the statement, so a released connection holds nothing of the request.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from api.db.pool import ACQUIRE_TIMEOUT_S, create_pool
from api.db.session import _BEGIN_SQL
from api.settings import Settings

if _BEGIN_SQL.count(", true)") != 4:
    raise RuntimeError("api/db/session.py: _BEGIN_SQL no longer sets the four principal settings "
                       "with set_config(..., true); the compiled statement relies on them ending "
                       "with its transaction (update api/compiled/connection.py with it)")


async def keep_session(conn: Any) -> None:
    """Release without RESET ALL (asyncpg still rolls back a transaction left open): a
    compiled read leaves no session setting behind (see the module docstring)."""


async def create_reader_pool(settings: Settings) -> asyncpg.Pool:
    """The compiled path's own pool; only Reader may use its connections."""
    return await create_pool(settings, reset=keep_session)


class Reader:
    """One request's connection, from the pool until release."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conn: Any = None

    async def __aenter__(self) -> Reader:
        self.conn = await self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.release(self.conn)

    async def read(self, sql: str, args: list[Any]) -> asyncpg.Record:
        return await self.conn.fetchrow(sql, *args)
