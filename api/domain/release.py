"""What counts-only roles may ask of coverage, answered from the protected national release.

A question is allowed when its cells are cells of the release (api/domain/disclosure.py):
grouped or filtered by DISTRICT plus at most one breakdown (CENTER, VACCINE, DOSE_NUMBER, or
one whole calendar month as the date filter). Day-level dates and two breakdowns at once are
refused, because their cells are not in the release and differencing them against it could
isolate a suppressed cell.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from api.domain.disclosure import BREAKDOWNS, NESTED, CellKey, Counts, protect
from api.domain.errors import Forbidden
from api.domain.records import Center, District, Vaccine

RELEASE_SQL = "SELECT breakdown, district_id, value, doses, recipients FROM vaxvault_coverage_release()"
# The national pass is one scan with nine groupings (about 6x coverage by district); it may
# take longer than the per-statement limit that guards request statements.
RELEASE_TIMEOUT_MS = 120_000


@dataclass(frozen=True)
class Release:
    """The national count tables with the cells withheld from counts-only roles."""

    cells: Mapping[CellKey, Counts]
    suppressed: frozenset[CellKey]
    min_cell: int
    # Reference data to name the cells, read in the same transaction.
    districts: Mapping[int, District] = field(default_factory=dict)
    centers: Mapping[int, Center] = field(default_factory=dict)
    vaccines: Mapping[str, Vaccine] = field(default_factory=dict)

    @classmethod
    def protected(cls, cells: Mapping[CellKey, Counts], min_cell: int,
                  **names: Mapping[Any, Any]) -> Release:
        return cls(cells=dict(cells), suppressed=protect(cells, min_cell), min_cell=min_cell,
                   **names)


@dataclass(frozen=True)
class Question:
    """A counts-only coverage question, reduced to release coordinates."""

    by_district: bool
    breakdown: str | None        # the one breakdown, grouped or fixed by a filter
    grouped: bool                # whether the breakdown is grouped (else fixed to `value`)
    value: str | None
    district_id: int | None      # fixed district (a filter, or an officer's own)


@dataclass(frozen=True)
class Cell:
    district_id: int | None
    breakdown: str | None
    value: str | None
    counts: Counts | None        # None: suppressed


def whole_month(start: date | None, end: date | None) -> str | None:
    """The month ('YYYY-MM-01') a date filter covers exactly; Forbidden for any other span."""
    if start is None and end is None:
        return None
    if start is None or end is None or start.day != 1 or end != start.replace(
            day=calendar.monthrange(start.year, start.month)[1]):
        raise Forbidden(
            "counts-only roles filter dates by one whole calendar month "
            f"(administeredFrom: the 1st, administeredTo: its last day); asked {start} to {end}")
    return start.isoformat()


def question(group_by: Sequence[str], district_id: int | None, fixed: Mapping[str, str | None]
             ) -> Question:
    """Check a question against the release; `fixed` maps breakdown -> filter value."""
    if "DAY" in group_by:
        raise Forbidden("counts-only roles do not group by DAY (a day's count can single "
                        "people out); filter by one calendar month instead")
    grouped = [d for d in group_by if d != "DISTRICT"]
    filtered = [b for b, v in fixed.items() if v is not None]
    breakdowns = set(grouped) | set(filtered)
    if len(breakdowns) > 1:
        raise Forbidden("counts-only roles see DISTRICT plus at most one of "
                        f"{', '.join(BREAKDOWNS)} (grouped or filtered); asked "
                        f"{', '.join(sorted(breakdowns))}")
    breakdown = next(iter(breakdowns), None)
    return Question(by_district="DISTRICT" in group_by, breakdown=breakdown,
                    grouped=breakdown in grouped, value=fixed.get(breakdown or "", None),
                    district_id=district_id)


def answer(release: Release, q: Question) -> list[Cell]:
    """The release cells that answer `q`, suppressed ones without counts, in key order."""
    per_district = q.by_district or q.district_id is not None or q.breakdown in NESTED
    wanted = [key for key in release.cells
              if key[0] == q.breakdown and (key[1] is not None) == per_district
              and (q.district_id is None or key[1] == q.district_id)
              and (q.grouped or q.breakdown is None or key[2] == q.value)]
    return [Cell(district_id=key[1] if q.by_district else None, breakdown=key[0], value=key[2],
                 counts=None if key in release.suppressed else release.cells[key])
            for key in sorted(wanted, key=lambda k: (k[1] or 0, k[2] or ""))]


class ReleaseKeeper:
    """The process's current release, refreshed every `ttl_s` seconds without making readers
    wait: while one request recomputes it, others get the previous release (a counts-only
    dashboard is fine a minute behind; the national pass takes seconds). Only the very first
    computation is waited for, by everyone, once (single flight)."""

    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._value: Release | None = None
        self._at = 0.0
        self._pending: asyncio.Future[Release] | None = None

    async def get(self, compute: Callable[[], Awaitable[Release]], min_cell: int) -> Release:
        value = self._value if self._value is not None and self._value.min_cell == min_cell \
            else None
        if value is not None and self.clock() - self._at < self.ttl_s:
            return value
        if self._pending is not None:
            if value is not None:
                return value
            return await asyncio.shield(self._pending)
        self._pending = asyncio.get_running_loop().create_future()
        try:
            fresh = await compute()
        except BaseException as exc:
            pending, self._pending = self._pending, None
            if isinstance(exc, Exception):
                pending.set_exception(exc)
                pending.exception()  # retrieved: waiters re-raise it
            else:
                pending.cancel()
            raise
        self._value, self._at = fresh, self.clock()
        pending, self._pending = self._pending, None
        pending.set_result(fresh)
        return fresh
