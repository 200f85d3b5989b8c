"""Reference data every role may read: districts, centers, vaccines."""

from __future__ import annotations

from api.db.session import Session
from api.domain.records import Center, District, Vaccine


async def districts(session: Session) -> list[District]:
    rows = await session.fetch("SELECT id, name, division FROM districts ORDER BY id")
    return [District(row["id"], row["name"], row["division"]) for row in rows]


async def centers(session: Session, district_id: int | None) -> list[Center]:
    rows = await session.fetch(
        "SELECT id, name, district_id FROM centers WHERE $1::int IS NULL OR district_id = $1 "
        "ORDER BY id", district_id)
    return [Center(row["id"], row["name"], row["district_id"]) for row in rows]


async def vaccines(session: Session) -> list[Vaccine]:
    rows = await session.fetch(
        "SELECT code, name, doses_required, dose_interval_days FROM vaccines ORDER BY code")
    return [Vaccine(row["code"], row["name"], row["doses_required"], row["dose_interval_days"])
            for row in rows]
