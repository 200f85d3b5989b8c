"""Setting and lifting privacy freezes (the database is where every API process reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.db.session import Session
from api.domain.audit import AuditTrail
from api.domain.outcome import Invalid


@dataclass(frozen=True)
class FreezeOrder:
    district_id: int | None      # None: national
    until: datetime | None       # None or past: lift
    reason: str


@dataclass(frozen=True)
class FreezeStatus:
    district_id: int | None
    active: bool
    until: datetime | None
    reason: str


async def set_freeze(session: Session, audit: AuditTrail, order: FreezeOrder) -> FreezeStatus | Invalid:
    """Start (or replace) the freeze for a scope, or lift it when `until` is not in the future."""
    if not order.reason.strip():
        return Invalid("reason", "say why the freeze is set or lifted; it is kept in the audit")
    if len(order.reason) > 500:
        return Invalid("reason", "keep the reason under 500 characters")
    if order.until is not None and order.until.tzinfo is None:
        return Invalid("until", f"{order.until.isoformat()} has no time zone; give one, e.g. "
                                "2026-12-01T00:00:00+06:00")
    facts = await session.fetchrow(
        "SELECT now() AS now, $1::int IS NULL OR EXISTS (SELECT 1 FROM districts WHERE id = $1) "
        "AS district_known", order.district_id)
    assert facts is not None
    if not facts["district_known"]:
        return Invalid("districtId", f"there is no district {order.district_id}; see `districts`")
    lifting = order.until is None or order.until <= facts["now"]
    sub = session.principal.sub
    async with session.savepoint():
        await session.execute(
            "UPDATE privacy_freezes SET lifted_at = now(), lifted_by = $2 "
            "WHERE lifted_at IS NULL AND until > now() AND district_id IS NOT DISTINCT FROM $1",
            order.district_id, sub)
        if not lifting:
            await session.execute(
                "INSERT INTO privacy_freezes (district_id, reason, set_by, until) "
                "VALUES ($1, $2, $3, $4)", order.district_id, order.reason.strip(), sub,
                order.until)
        await audit.record_write(session, "freeze", [], {
            "mutation": "setPrivacyFreeze", "district_id": order.district_id,
            "until": None if lifting else order.until, "lifted": lifting,
            "reason": order.reason.strip()})
    return FreezeStatus(district_id=order.district_id, active=not lifting,
                        until=None if lifting else order.until, reason=order.reason.strip())


async def active_freezes(session: Session) -> list[FreezeStatus]:
    """Every freeze in force now, the national one first, then by district."""
    rows = await session.fetch(
        "SELECT district_id, until, reason FROM privacy_freezes "
        "WHERE lifted_at IS NULL AND until > now() ORDER BY district_id NULLS FIRST, until")
    return [FreezeStatus(r["district_id"], True, r["until"], r["reason"]) for r in rows]
