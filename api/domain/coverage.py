"""Coverage counts: doses and distinct recipients per group, within the principal's scope."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from api.db.session import Session
from api.domain import reference, release
from api.domain.disclosure import Counts
from api.domain.doses import check_dose_number
from api.domain.errors import BadUserInput, Forbidden
from api.domain.records import Center, District, Vaccine
from api.domain.release import Release, ReleaseKeeper
from api.policy import PUBLIC_COVERAGE_DIMENSIONS, ROW_SCOPES, RowScope, counts_only
from api.principal import Principal, Role
from api.ttl_cache import TtlCache


class Dimension(StrEnum):
    DISTRICT = "DISTRICT"
    CENTER = "CENTER"
    DAY = "DAY"
    DOSE_NUMBER = "DOSE_NUMBER"
    VACCINE = "VACCINE"


@dataclass(frozen=True)
class CoverageFilter:
    district_id: int | None = None
    center_id: int | None = None
    administered_from: date | None = None
    administered_to: date | None = None
    vaccine: str | None = None
    dose_number: int | None = None


@dataclass(frozen=True)
class CoverageRow:
    district: District | None
    center: Center | None
    day: date | None
    dose_number: int | None
    vaccine: Vaccine | None
    doses: int | None            # None: suppressed (counts-only roles, small or complementary)
    recipients: int | None

    @property
    def suppressed(self) -> bool:
        return self.doses is None


_SQL = """
SELECT k.district_id, dt.name AS district_name, dt.division, k.center_id,
       c.name AS center_name, c.district_id AS center_district_id, k.day, k.dose_number,
       k.vaccine_code, v.name AS vaccine_name, v.doses_required, v.dose_interval_days,
       k.doses, k.recipients
FROM vaxvault_coverage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) k
LEFT JOIN districts dt ON dt.id = k.district_id
LEFT JOIN centers c ON c.id = k.center_id
LEFT JOIN vaccines v ON v.code = k.vaccine_code
LIMIT $12
"""
# A grouping finer than this (say DAY x CENTER nationally) is refused: narrow the filter.
MAX_ROWS = 10_000


class CoverageCache(TtlCache[Hashable, list["CoverageRow"]]):
    """Recent coverage answers per (scope, grouping, filter), kept `ttl_s` seconds.

    Coverage aggregates every dose in scope (hundreds of ms on a national registry) and
    dashboards ask the same few questions constantly; counts a few seconds old are fine
    there. The key carries the principal's role and scope claims, so no answer crosses scopes.
    The protected national release (for counts-only roles) is kept by `release`.
    """

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s, max_entries, clock)
        self.release = ReleaseKeeper(clock=clock)


async def counts(session: Session, group_by: Sequence[Dimension], filters: CoverageFilter,
                 cache: CoverageCache | None = None, min_cell: int = 10) -> list[CoverageRow]:
    """Rows of counts grouped by `group_by`, scoped by role (the SQL function scopes again).

    Counts-only principals (policy.counts_only) get cells of the protected release instead,
    with cells under `min_cell` recipients and their complements suppressed.
    With a cache, an answer up to `cache.ttl_s` seconds old may be returned.
    """
    principal = session.principal
    state = await session.state()
    if counts_only(principal.role, frozen=state.freeze is not None):
        return await _released(session, group_by, filters, cache, min_cell)
    key = (principal.role, principal.center_id, principal.district_id,
           tuple(sorted(set(group_by))), filters)
    if cache is None:
        return await _counts(session, group_by, filters)
    return await cache.get_or_compute(key, lambda: _counts(session, group_by, filters))


async def _release(session: Session, min_cell: int) -> Release:
    limit = await session.fetchval("SELECT current_setting('statement_timeout')")
    await session.execute("SELECT set_config('statement_timeout', $1, true)",
                          str(release.RELEASE_TIMEOUT_MS))
    rows = await session.fetch(release.RELEASE_SQL)
    await session.execute("SELECT set_config('statement_timeout', $1, true)", limit)
    cells = {(r["breakdown"], r["district_id"], r["value"]): Counts(r["doses"], r["recipients"])
             for r in rows}
    return Release.protected(
        cells, min_cell, districts={d.id: d for d in await reference.districts(session)},
        centers={c.id: c for c in await reference.centers(session, None)},
        vaccines={v.code: v for v in await reference.vaccines(session)})


async def _released(session: Session, group_by: Sequence[Dimension], filters: CoverageFilter,
                    cache: CoverageCache | None, min_cell: int) -> list[CoverageRow]:
    dims = {d.value for d in group_by}
    scoped = _scoped_ids(session.principal, dims, filters)
    if scoped is None:
        return []
    district_id, center_id = scoped
    dose_number = check_dose_number(filters.dose_number)
    question = release.question(sorted(dims), district_id, {
        "CENTER": None if center_id is None else str(center_id),
        "VACCINE": filters.vaccine,
        "DOSE_NUMBER": None if dose_number is None else str(dose_number),
        "MONTH": release.whole_month(filters.administered_from, filters.administered_to)})
    if cache is None:
        protected = await _release(session, min_cell)
    else:
        protected = await cache.release.get(lambda: _release(session, min_cell), min_cell)
    rows = []
    for cell in release.answer(protected, question):
        grouped = cell.breakdown if question.grouped else None
        center = protected.centers.get(int(cell.value or 0)) if grouped == "CENTER" else None
        rows.append(CoverageRow(
            district=protected.districts.get(cell.district_id or 0),
            center=center, day=None,
            dose_number=int(cell.value or 0) if grouped == "DOSE_NUMBER" else None,
            vaccine=protected.vaccines.get(cell.value or "") if grouped == "VACCINE" else None,
            doses=cell.counts.doses if cell.counts else None,
            recipients=cell.counts.recipients if cell.counts else None))
    return rows


async def _counts(session: Session, group_by: Sequence[Dimension],
                  filters: CoverageFilter) -> list[CoverageRow]:
    dims = set(group_by)
    scoped = _scoped_ids(session.principal, {d.value for d in dims}, filters)
    if scoped is None:
        return []
    district_id, center_id = scoped
    rows = await session.fetch(
        _SQL, Dimension.DISTRICT in dims, Dimension.CENTER in dims, Dimension.DAY in dims,
        Dimension.DOSE_NUMBER in dims, Dimension.VACCINE in dims, district_id, center_id,
        filters.administered_from, filters.administered_to, filters.vaccine,
        check_dose_number(filters.dose_number), MAX_ROWS + 1)
    if len(rows) > MAX_ROWS:
        raise BadUserInput(f"this grouping has more than {MAX_ROWS} rows; group by fewer "
                           "dimensions or filter by district, center or dates")
    return [CoverageRow(
        district=District(r["district_id"], r["district_name"], r["division"])
        if r["district_id"] is not None else None,
        center=Center(r["center_id"], r["center_name"], r["center_district_id"])
        if r["center_id"] is not None else None,
        day=r["day"], dose_number=r["dose_number"],
        vaccine=Vaccine(r["vaccine_code"], r["vaccine_name"], r["doses_required"],
                        r["dose_interval_days"]) if r["vaccine_code"] is not None else None,
        doses=r["doses"], recipients=r["recipients"]) for r in rows]


def _scoped_ids(principal: Principal, dims: set[str],
                filters: CoverageFilter) -> tuple[int | None, int | None] | None:
    """The (district, center) a coverage question is narrowed to by the role's scope; None when
    the filter names a district or center outside it (an empty answer, not an error).
    Forbidden for the public asking past district totals and for roles with no coverage."""
    scope = ROW_SCOPES[principal.role].coverage
    district_id, center_id = filters.district_id, filters.center_id
    if principal.role is Role.PUBLIC:
        extra = dims - PUBLIC_COVERAGE_DIMENSIONS
        if extra or center_id is not None:
            raise Forbidden("the public sees national and per-district totals only; "
                            f"group by DISTRICT or nothing (asked: {sorted(extra) or 'centerId'})")
    if scope is RowScope.DISTRICT:
        if district_id is not None and district_id != principal.district_id:
            return None
        district_id = principal.district_id
    elif scope is RowScope.CENTER:
        if center_id is not None and center_id != principal.center_id:
            return None
        center_id = principal.center_id
    elif scope is RowScope.NONE:
        raise Forbidden(f"role {principal.role.value} sees no coverage counts")
    return district_id, center_id
