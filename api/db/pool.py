"""The API's connection pool: least-privilege role, bounded statement time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from api.db.connect import describe
from api.errors import DatabaseError
from api.settings import Settings

API_ROLE = "vaxvault_api"
# How long a request waits for a free connection before failing with a clear error:
# bounded queueing instead of an unbounded pile-up when the pool is exhausted.
ACQUIRE_TIMEOUT_S = 5.0


async def create_pool(settings: Settings, *, min_size: int = 1,
                      reset: Callable[[Any], Awaitable[None]] | None = None) -> asyncpg.Pool:
    """A pool whose sessions run as the API role, never as the owner or a superuser.

    The role is a startup parameter, so the pool's RESET ALL between uses returns to it.
    `reset` replaces that RESET ALL (api/compiled/connection.py: a pool only it uses).
    """
    url = settings.require_database_url()
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=settings.pool_max_size,
            timeout=10,
            reset=reset,
            server_settings={
                "role": API_ROLE,
                "application_name": "vaxvault-api",
                "statement_timeout": str(settings.statement_timeout_ms),
                "idle_in_transaction_session_timeout": str(settings.statement_timeout_ms * 2),
            },
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot open a pool to {describe(url)}: {exc}") from exc
    return pool
