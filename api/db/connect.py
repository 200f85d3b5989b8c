"""Opening connections and pools, with asyncpg's failures translated into DatabaseError."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg

from api.errors import DatabaseError

CONNECT_TIMEOUT_S = 10.0


def describe(url: str) -> str:
    """host:port/database of a URL, without credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


async def connect(url: str) -> asyncpg.Connection:
    """Open one connection; raise DatabaseError naming the server when that fails."""
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {describe(url)}: {exc}") from exc
