"""Recording and correcting doses: series order, minimum intervals, own center, audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg

from api.db.session import Session
from api.domain import recipients
from api.domain.audit import AuditTrail
from api.domain.conditions import Conditions
from api.domain.doses import check_dose_number
from api.domain.errors import NotFound
from api.domain.outcome import Invalid
from api.domain.records import DOSE_COLUMNS, DOSE_FROM, Dose, Vaccine
from api.domain.scope import doses_in_scope
from api.principal import Role


@dataclass(frozen=True)
class NewDose:
    recipient_id: int
    vaccine: str
    lot_number: str
    administered_on: date
    dose_number: int | None = None
    center_id: int | None = None


@dataclass(frozen=True)
class Correction:
    dose_id: int
    reason: str
    vaccine: str | None = None
    lot_number: str | None = None
    administered_on: date | None = None
    center_id: int | None = None


@dataclass(frozen=True)
class _Facts:
    today: date
    vaccine: Vaccine | None
    center_known: bool


async def _facts(session: Session, vaccine: str, center_id: int) -> _Facts:
    row = await session.fetchrow(
        "SELECT current_date AS today, v.code, v.name, v.doses_required, v.dose_interval_days, "
        "EXISTS (SELECT 1 FROM centers WHERE id = $2) AS center_known "
        "FROM (SELECT 1) one LEFT JOIN vaccines v ON v.code = $1", vaccine, center_id)
    assert row is not None
    found = Vaccine(row["code"], row["name"], row["doses_required"], row["dose_interval_days"]) \
        if row["code"] is not None else None
    return _Facts(row["today"], found, row["center_known"])


def _own_center(session: Session, center_id: int | None) -> int | Invalid:
    principal = session.principal
    if principal.role is Role.CENTER_STAFF:
        if center_id is not None and center_id != principal.center_id:
            return Invalid("centerId", f"you may record doses only at your own center "
                                       f"{principal.center_id}, not {center_id}")
        assert principal.center_id is not None
        return principal.center_id
    if center_id is None:
        return Invalid("centerId", "give the center where the dose was given")
    return center_id


def _check_common(facts: _Facts, code: str, center_id: int, lot: str, on: date) -> Invalid | None:
    if facts.vaccine is None:
        return Invalid("vaccine", f"there is no vaccine {code!r}; see `vaccines`")
    if not facts.center_known:
        return Invalid("centerId", f"there is no center {center_id}; see `centers`")
    if not 1 <= len(lot.strip()) <= 64:
        return Invalid("lotNumber", "give the lot number printed on the vial (1-64 characters)")
    if on > facts.today:
        return Invalid("administeredOn", f"{on} is in the future; doses are recorded once given")
    return None


def _check_interval(previous: Dose | None, on: date) -> Invalid | None:
    if previous is None:
        return None
    if previous.administered_on is None:
        return Invalid("administeredOn", f"dose {previous.dose_number} has no date; restore it "
                                         "first ('vaxvault restore records')")
    earliest = previous.administered_on + timedelta(days=previous.vaccine.dose_interval_days)
    if on < earliest:
        return Invalid("administeredOn",
                       f"{on} is too soon after dose {previous.dose_number} on "
                       f"{previous.administered_on}; {previous.vaccine.code} needs at least "
                       f"{previous.vaccine.dose_interval_days} days, so {earliest} at the earliest")
    return None


def _next_due(vaccine: Vaccine, number: int, on: date) -> date | None:
    if number < vaccine.doses_required:
        return on + timedelta(days=vaccine.dose_interval_days)
    return None


async def _series(session: Session, recipient_id: int) -> list[Dose]:
    where = Conditions().add("d.recipient_id = {p}", recipient_id)
    doses_in_scope(where, session.principal)
    rows = await session.fetch(f"SELECT {DOSE_COLUMNS} FROM {DOSE_FROM} {where.where()} "
                               "ORDER BY d.dose_number", *where.args)
    return [Dose.from_row(row) for row in rows]


async def _dose(session: Session, dose_id: int) -> Dose:
    where = Conditions().add("d.id = {p}", dose_id)
    doses_in_scope(where, session.principal)
    row = await session.fetchrow(f"SELECT {DOSE_COLUMNS} FROM {DOSE_FROM} {where.where()}",
                                 *where.args)
    if row is None:
        raise NotFound(f"no dose {dose_id} in your scope")
    return Dose.from_row(row)


async def record(session: Session, audit: AuditTrail, new: NewDose) -> Dose | Invalid:
    """Record the next dose of a recipient's series; sets next_due_on from the vaccine."""
    center_id = _own_center(session, new.center_id)
    if isinstance(center_id, Invalid):
        return center_id
    facts = await _facts(session, new.vaccine, center_id)
    problem = _check_common(facts, new.vaccine, center_id, new.lot_number, new.administered_on)
    if problem is not None:
        return problem
    assert facts.vaccine is not None
    try:
        await recipients.get(session, new.recipient_id)
    except NotFound:
        return Invalid("recipientId", f"no recipient {new.recipient_id} in your scope")
    series = await _series(session, new.recipient_id)
    expected = len(series) + 1
    number = check_dose_number(new.dose_number) or expected
    if number != expected:
        return Invalid("doseNumber", f"dose {number} is out of sequence; this recipient has "
                                     f"{len(series)} dose(s), so the next is dose {expected}")
    problem = _check_interval(series[-1] if series else None, new.administered_on)
    if problem is not None:
        return problem
    due = _next_due(facts.vaccine, number, new.administered_on)
    try:
        async with session.savepoint():
            dose_id = await session.fetchval(
                "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, "
                "administered_on, center_id, next_due_on, recorded_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                new.recipient_id, number, new.vaccine, new.lot_number.strip(),
                new.administered_on, center_id, due, session.principal.sub or "unknown")
            dose = await _dose(session, dose_id)
            await audit.record_write(session, "write", [new.recipient_id],
                                     {"mutation": "recordDose", "dose_id": dose_id,
                                      "changed": list(dose.values()), "before": None,
                                      "after": dose.values()})
    except asyncpg.UniqueViolationError:
        return Invalid("doseNumber", f"dose {number} was recorded meanwhile; reload the "
                                     "recipient and try again")
    return dose


async def correct(session: Session, audit: AuditTrail, fix: Correction) -> Dose | Invalid:
    """Change a recorded dose with a reason; the previous values stay in the audit log."""
    if not fix.reason.strip():
        return Invalid("reason", "say why the dose is corrected (the reason is kept in history)")
    try:
        before = await _dose(session, fix.dose_id)
    except NotFound:
        return Invalid("doseId", f"no dose {fix.dose_id} in your scope")
    principal = session.principal
    if principal.role is Role.CENTER_STAFF and before.center.id != principal.center_id:
        return Invalid("doseId", f"dose {fix.dose_id} was given at center {before.center.id}; "
                                 "only its staff or an admin may correct it")
    center_id = _own_center(session, fix.center_id if fix.center_id is not None
                            else before.center.id)
    if isinstance(center_id, Invalid):
        return center_id
    code = fix.vaccine or before.vaccine.code
    lot = fix.lot_number if fix.lot_number is not None else before.lot_number
    on = fix.administered_on or before.administered_on
    if on is None:
        return Invalid("administeredOn", "this dose has no date; give administeredOn")
    facts = await _facts(session, code, center_id)
    problem = _check_common(facts, code, center_id, lot, on)
    if problem is not None:
        return problem
    assert facts.vaccine is not None
    series = await _series(session, before.recipient_id)
    previous = next((d for d in series if d.dose_number == before.dose_number - 1), None)
    problem = _check_interval(previous, on)
    if problem is not None:
        return problem
    due = _next_due(facts.vaccine, before.dose_number, on)
    async with session.savepoint():
        await session.execute(
            "UPDATE doses SET vaccine_code = $2, lot_number = $3, administered_on = $4, "
            "center_id = $5, next_due_on = $6 WHERE id = $1",
            fix.dose_id, code, lot.strip(), on, center_id, due)
        after = await _dose(session, fix.dose_id)
        old, new = before.values(), after.values()
        changed = [key for key in new if old[key] != new[key]]
        await audit.record_write(session, "write", [before.recipient_id],
                                 {"mutation": "correctDose", "dose_id": fix.dose_id,
                                  "reason": fix.reason.strip(), "changed": changed,
                                  "before": old, "after": new})
    return after
