"""How a compiled read meets the database: one statement, one round trip, committed by itself.

The statement (api/compiled/statement.py) sets the principal for its own transaction
(`set_config(..., true)`, api/db/session.py's _BEGIN_SQL), reads the freezes that bind it and
builds the response and its audit row; api/compiled/audit_commit.py commits that row (with
those of concurrent reads) before the response goes out.

Nothing of the request stays on the connection (the settings end with the statement's
transaction), so Reader releases it marked clean and the pool skips its RESET ALL, which would
be a second round trip (api/db/pool.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from api.db.pool import ACQUIRE_TIMEOUT_S
from api.db.session import _BEGIN_SQL

if _BEGIN_SQL.count(", true)") != 4:
    raise RuntimeError("api/db/session.py: _BEGIN_SQL no longer sets the four principal settings "
                       "with set_config(..., true); the compiled statement relies on them ending "
                       "with its transaction (update api/compiled/connection.py with it)")


class Reader:
    """One request's connection, from the pool until release."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conn: Any = None

    async def __aenter__(self) -> Reader:
        # asyncio.timeout, not acquire(timeout=): that wraps the wait in asyncio.wait_for, a
        # task of its own per request (~4% of a compiled read in py-spy). Same TimeoutError.
        async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
            self.conn = await self.pool.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Even after an error: the statement's transaction ended, and its settings with it.
        self.conn.mark_left_clean()
        await self.pool.release(self.conn)

    async def read(self, sql: str, args: list[Any]) -> asyncpg.Record:
        return await self.conn.fetchrow(sql, *args)
