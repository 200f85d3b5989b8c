"""Registering a recipient: validated, scoped to the staff member's center, audited."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import asyncpg

from api.db.session import Session
from api.domain import recipients
from api.domain.audit import AuditTrail
from api.domain.outcome import Duplicate, Invalid
from api.domain.records import Recipient
from api.fields import valid
from api.principal import Role

SEXES = ("female", "male", "other")


@dataclass(frozen=True)
class Registration:
    national_id: str
    full_name: str
    birth_date: date
    sex: str
    phone: str | None
    district_id: int
    center_id: int | None


def _check(reg: Registration, today: date) -> Invalid | None:
    if not valid("recipients", "national_id", reg.national_id):
        return Invalid("nationalId", f"{reg.national_id!r} is not a national ID; give 10, 13 or "
                                     "17 digits")
    if not 1 <= len(reg.full_name.strip()) <= 200:
        return Invalid("fullName", "give a name of 1 to 200 characters")
    if not date(1900, 1, 1) <= reg.birth_date <= today:
        return Invalid("birthDate", f"{reg.birth_date} is not a plausible birth date "
                                    f"(1900-01-01 to {today})")
    if reg.sex not in SEXES:
        return Invalid("sex", f"{reg.sex!r} is not one of {', '.join(SEXES)}")
    if reg.phone is not None and not valid("recipients", "phone", reg.phone):
        return Invalid("phone", f"{reg.phone!r} is not a Bangladeshi mobile number like "
                                "+8801712345678")
    return None


async def register(session: Session, audit: AuditTrail,
                   reg: Registration) -> Recipient | Duplicate | Invalid:
    """Insert a recipient; Duplicate when the national ID is registered already."""
    principal = session.principal
    center_id = reg.center_id
    if principal.role is Role.CENTER_STAFF:
        if center_id is not None and center_id != principal.center_id:
            return Invalid("centerId", f"you may register only at your own center "
                                       f"{principal.center_id}, not {center_id}")
        center_id = principal.center_id
    if center_id is None:
        return Invalid("centerId", "give the center the recipient registers for")
    facts = await session.fetchrow(
        "SELECT current_date AS today, "
        "(SELECT district_id FROM centers WHERE id = $1) AS center_district, "
        "EXISTS (SELECT 1 FROM districts WHERE id = $2) AS district_known", center_id,
        reg.district_id)
    assert facts is not None
    problem = _check(reg, facts["today"])
    if problem is not None:
        return problem
    if not facts["district_known"]:
        return Invalid("districtId", f"there is no district {reg.district_id}; see `districts`")
    if facts["center_district"] is None:
        return Invalid("centerId", f"there is no center {center_id}; see `centers`")
    try:
        async with session.savepoint():
            new_id = await session.fetchval(
                "INSERT INTO recipients (national_id, full_name, birth_date, sex, phone, "
                "district_id, center_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                reg.national_id, reg.full_name.strip(), reg.birth_date, reg.sex, reg.phone,
                reg.district_id, center_id)
            after = {**asdict(reg), "center_id": center_id}
            await audit.record_write(session, "write", [new_id],
                                     {"mutation": "registerRecipient", "changed": list(after),
                                      "before": None, "after": after})
    except asyncpg.UniqueViolationError:
        # The answer confirms the holder exists: audited as a read of their national ID, in
        # the request's closing audit entry (outside the rolled-back savepoint).
        holder = await session.fetchval("SELECT vaxvault_national_id_holder($1)",
                                        reg.national_id)
        if holder is not None:
            audit.note_read(holder, "nationalId")
        if principal.role is Role.CENTER_STAFF:
            return Duplicate("nationalId", reg.national_id,
                             f"national ID {reg.national_id} cannot be registered; ask an "
                             "administrator")
        return Duplicate("nationalId", reg.national_id,
                         f"national ID {reg.national_id} is registered already; search for it "
                         "with recipients(filter: {nationalId})")
    return await recipients.get(session, new_id)
