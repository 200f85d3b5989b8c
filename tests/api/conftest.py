from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from api.db.pool import create_pool
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
    # The busiest center, so its staff have rows registered there and rows only dosed there.
    center_id, district_id = await owner.fetchrow(
        "SELECT c.id, c.district_id FROM centers c JOIN recipients r ON r.center_id = c.id "
        "GROUP BY c.id ORDER BY count(*) DESC, c.id LIMIT 1")
    recipient_id = await owner.fetchval(
        "SELECT recipient_id FROM doses GROUP BY recipient_id HAVING count(*) >= 2 "
        "ORDER BY recipient_id LIMIT 1")
    return Cast(admin=principal(Role.ADMIN), auditor=principal(Role.AUDITOR),
                officer=principal(Role.DISTRICT_OFFICER, district_id=district_id),
                staff=principal(Role.CENTER_STAFF, center_id=center_id),
                recipient=principal(Role.RECIPIENT, sub=str(recipient_id)),
                public=principal(Role.PUBLIC), center_id=center_id, district_id=district_id,
                recipient_id=recipient_id)
