from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from api.db.pool import API_ROLE, ApiConnection, create_pool, reset_unless_clean
from api.principal import Principal, Role
from api.settings import Settings
from tests.api.client import principal


@dataclass(frozen=True)
class Cast:
    """One principal per role, scoped to a center/district that holds seeded rows."""

    admin: Principal
    auditor: Principal
    officer: Principal
    staff: Principal
    recipient: Principal
    public: Principal
    center_id: int
    district_id: int
    recipient_id: int

    def of(self, role: Role) -> Principal:
        return {Role.ADMIN: self.admin, Role.AUDITOR: self.auditor,
                Role.DISTRICT_OFFICER: self.officer, Role.CENTER_STAFF: self.staff,
                Role.RECIPIENT: self.recipient, Role.PUBLIC: self.public}[role]


@pytest.fixture
async def pool(seeded_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(seeded_settings)
    yield pool
    await pool.close()


@pytest.fixture
async def owner(seeded_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the same database, to look behind the API's back."""
    conn = await asyncpg.connect(seeded_database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def cast(owner: asyncpg.Connection) -> Cast:
    # A center with people dosed there who registered elsewhere, so both halves of the
    # center_staff scope hold rows.
    center_id, district_id = await owner.fetchrow(
        "SELECT c.id, c.district_id FROM doses d JOIN recipients r ON r.id = d.recipient_id "
        "JOIN centers c ON c.id = d.center_id WHERE r.center_id <> d.center_id "
        "GROUP BY c.id ORDER BY count(*) DESC, c.id LIMIT 1")
    # A recipient of that center with a dose series, so every role that may see them does.
    recipient_id = await owner.fetchval(
        "SELECT r.id FROM recipients r WHERE r.center_id = $1 AND "
        "(SELECT count(*) FROM doses d WHERE d.recipient_id = r.id) >= 2 ORDER BY r.id LIMIT 1",
        center_id)
    return Cast(admin=principal(Role.ADMIN), auditor=principal(Role.AUDITOR),
                officer=principal(Role.DISTRICT_OFFICER, district_id=district_id),
                staff=principal(Role.CENTER_STAFF, center_id=center_id),
                recipient=principal(Role.RECIPIENT, sub=str(recipient_id)),
                public=principal(Role.PUBLIC), center_id=center_id, district_id=district_id,
                recipient_id=recipient_id)


@pytest.fixture
async def counted_pool(seeded_database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A one-connection API pool and the list of every statement it sends (round trips)."""
    statements: list[str] = []

    async def count(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: statements.append(record.query))

    # Released as the API's pool does it: RESET ALL unless the use left the session clean.
    pool = await asyncpg.create_pool(seeded_database_url, min_size=1, max_size=1, init=count,
                                     server_settings={"role": API_ROLE},
                                     connection_class=ApiConnection, reset=reset_unless_clean)
    yield pool, statements
    await pool.close()
