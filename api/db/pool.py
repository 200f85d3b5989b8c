"""The API's connection pool: least-privilege role, bounded statement time."""

from __future__ import annotations

import asyncpg

from api.db.connect import describe
from api.errors import DatabaseError
from api.settings import Settings

API_ROLE = "vaxvault_api"
# How long a request waits for a free connection before failing with a clear error:
# bounded queueing instead of an unbounded pile-up when the pool is exhausted.
ACQUIRE_TIMEOUT_S = 5.0


class ApiConnection(asyncpg.Connection):
    """A pool connection that can say its last use left nothing on the session."""

    left_clean = False

    def mark_left_clean(self) -> None:
        """The use ending now changed no session state (api/compiled/connection.py: one
        statement whose settings end with its transaction): release skips RESET ALL, which
        would be a round trip of its own."""
        self.left_clean = True


async def reset_unless_clean(conn: ApiConnection) -> None:
    """Connection.reset() on release (asyncpg has already rolled back any open transaction),
    unless the use said it left the session clean."""
    if conn.left_clean:
        conn.left_clean = False
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def create_pool(settings: Settings, *, min_size: int = 1) -> asyncpg.Pool:
    """A pool whose sessions run as the API role, never as the owner or a superuser.

    The role is a startup parameter, so the pool's RESET ALL between uses returns to it.
    """
    url = settings.require_database_url()
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=settings.pool_max_size,
            timeout=10,
            connection_class=ApiConnection,
            reset=reset_unless_clean,
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
