"""Reading doses within the principal's row scope, and the recall list of doses due."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from api.db.session import Session
from api.domain.conditions import Conditions
from api.domain.errors import BadUserInput
from api.domain.pagination import Page, decode_cursor, encode_cursor, make_page, page_size
from api.domain.records import DOSE_COLUMNS, DOSE_FROM, Dose
from api.domain.scope import center_doses_in_scope, doses_in_scope
from api.principal import Principal

CURSOR_KIND = "dose"
MAX_DUE_WINDOW_DAYS = 62
MAX_DOSE_NUMBER = 6
# The recall list is one list, not pages: past this many, narrow the window or the center.
MAX_DUE = 10_000


def check_dose_number(number: int | None, name: str = "doseNumber") -> int | None:
    """`number` if it can be a dose number (1-6); BadUserInput otherwise."""
    if number is not None and not 1 <= number <= MAX_DOSE_NUMBER:
        raise BadUserInput(f"{name}: {number} is not a dose number; give 1 to {MAX_DOSE_NUMBER}")
    return number


@dataclass(frozen=True)
class DoseFilter:
    center_id: int | None = None
    recipient_id: int | None = None
    administered_from: date | None = None
    administered_to: date | None = None
    dose_number: int | None = None
    vaccine: str | None = None


@dataclass(frozen=True)
class DueDose:
    """The next dose of a series: due on `due_on`, not given yet."""

    last_dose: Dose
    dose_number: int
    due_on: date


def _cursor(dose: Dose) -> str:
    day = dose.administered_on.isoformat() if dose.administered_on else None
    return encode_cursor(CURSOR_KIND, [day, dose.id])


def _after(where: Conditions, cursor: str | None) -> None:
    """Keyset condition for ORDER BY administered_on DESC NULLS FIRST, id DESC."""
    key = decode_cursor(CURSOR_KIND, cursor, 2)
    if key is None:
        return
    day, dose_id = key
    if not isinstance(dose_id, int):
        raise BadUserInput(f"after: {cursor!r} is not a dose cursor")
    if day is None:
        where.add("(d.administered_on IS NOT NULL OR d.id < {p})", dose_id)
        return
    try:
        on = date.fromisoformat(day)
    except (TypeError, ValueError) as exc:
        raise BadUserInput(f"after: {cursor!r} is not a dose cursor") from exc
    where.add(f"(d.administered_on, d.id) < ({where.param(on)}, {{p}})", dose_id)


def search_conditions(where: Conditions, principal: Principal, filters: DoseFilter,
                      after: str | None) -> Conditions:
    """The WHERE of a page of doses (`d`): scope, filters, keyset. Shared with api/compiled,
    so both read paths select the same rows; BadUserInput for a bad dose number or cursor."""
    if filters.center_id is None or not center_doses_in_scope(principal, filters.center_id):
        doses_in_scope(where, principal)  # else the center filter below implies it
    (where.add_if(filters.center_id, "d.center_id = {p}")
          .add_if(filters.recipient_id, "d.recipient_id = {p}")
          .add_if(filters.administered_from, "d.administered_on >= {p}")
          .add_if(filters.administered_to, "d.administered_on <= {p}")
          .add_if(check_dose_number(filters.dose_number), "d.dose_number = {p}")
          .add_if(filters.vaccine, "d.vaccine_code = {p}"))
    _after(where, after)
    return where


async def search(session: Session, filters: DoseFilter, first: int | None,
                 after: str | None) -> Page[Dose]:
    """One page of in-scope doses matching `filters`, latest first."""
    size = page_size(first)
    where = search_conditions(Conditions(), session.principal, filters, after)
    limit = where.param(size + 1)
    rows = await session.fetch(
        f"SELECT {DOSE_COLUMNS} FROM {DOSE_FROM} {where.where()} "
        f"ORDER BY d.administered_on DESC NULLS FIRST, d.id DESC LIMIT {limit}", *where.args)
    return make_page([Dose.from_row(row) for row in rows], size, _cursor)


async def of_recipients(session: Session, recipient_ids: Sequence[int]) -> list[list[Dose]]:
    """Each recipient's in-scope doses by dose number: the DataLoader batch."""
    where = Conditions().add("d.recipient_id = ANY({p})", list(set(recipient_ids)))
    doses_in_scope(where, session.principal)
    rows = await session.fetch(f"SELECT {DOSE_COLUMNS} FROM {DOSE_FROM} {where.where()} "
                               "ORDER BY d.recipient_id, d.dose_number", *where.args)
    grouped: dict[int, list[Dose]] = {}
    for row in rows:
        grouped.setdefault(row["recipient_id"], []).append(Dose.from_row(row))
    return [grouped.get(i, []) for i in recipient_ids]


async def due(session: Session, start: date, end: date, center_id: int | None) -> list[DueDose]:
    """Doses falling due in [start, end] whose next dose was not given, by due date.

    center_id narrows to series whose last dose was given at that center.
    """
    if end < start:
        raise BadUserInput(f"to: {end} is before from: {start}; give a window that moves forward")
    if (end - start).days > MAX_DUE_WINDOW_DAYS:
        raise BadUserInput(f"the window {start}..{end} is longer than {MAX_DUE_WINDOW_DAYS} days;"
                           " ask for a shorter one")
    where = Conditions().add("d.next_due_on >= {p}", start).add("d.next_due_on <= {p}", end)
    where.add("NOT EXISTS (SELECT 1 FROM doses n WHERE n.recipient_id = d.recipient_id "
              "AND n.dose_number = d.dose_number + 1)")
    where.add_if(center_id, "d.center_id = {p}")
    doses_in_scope(where, session.principal)
    limit = where.param(MAX_DUE + 1)
    rows = await session.fetch(f"SELECT {DOSE_COLUMNS} FROM {DOSE_FROM} {where.where()} "
                               f"ORDER BY d.next_due_on, d.id LIMIT {limit}", *where.args)
    if len(rows) > MAX_DUE:
        raise BadUserInput(f"more than {MAX_DUE} doses fall due in {start}..{end}; ask for a "
                           "shorter window or one center")
    result = []
    for row in rows:
        dose = Dose.from_row(row)
        assert dose.next_due_on is not None
        result.append(DueDose(last_dose=dose, dose_number=dose.dose_number + 1,
                              due_on=dose.next_due_on))
    return result
