"""Complementary suppression holds against an attacker who solves every published relation.

The attacker here is independent of api/domain/disclosure.py: it knows the published cells of
every question counts-only roles may ask (each is a release cell, api/domain/release.py), models
the registry at its finest grain (district x center x vaccine x dose x month), treats absent
cells as known zeros, and asks by exact rational elimination whether any suppressed cell's
value follows from what was published.
"""

from __future__ import annotations

import os
from collections import defaultdict
from fractions import Fraction
from itertools import product

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.domain.disclosure import CellKey, Counts, protect

EXAMPLES = int(os.environ.get("VAXVAULT_SOAK_EXAMPLES", "25"))
DISTRICTS = (1, 2, 3)
CENTERS = {1: ("11", "12"), 2: ("21", "22"), 3: ("31",)}
VACCINES = ("AZ", "MD", "PF")
DOSES = ("1", "2")
MONTHS = ("2026-01-01", "2026-02-01", "")
Micro = tuple[int, str, str, str, str]   # district, center, vaccine, dose, month

dose_records = st.lists(st.tuples(
    st.sampled_from(DISTRICTS).flatmap(lambda d: st.tuples(st.just(d),
                                                           st.sampled_from(CENTERS[d]))),
    st.sampled_from(VACCINES), st.sampled_from(DOSES), st.sampled_from(MONTHS),
    st.integers(0, 40)), max_size=120)


def release_keys(m: Micro) -> list[CellKey]:
    """The release cells a dose at micro cell `m` counts in (as the SQL grouping sets do)."""
    district, center, vaccine, dose, month = m
    keys: list[CellKey] = [(None, None, None), (None, district, None),
                           ("CENTER", district, center)]
    for breakdown, value in (("VACCINE", vaccine), ("DOSE_NUMBER", dose), ("MONTH", month)):
        keys += [(breakdown, district, value), (breakdown, None, value)]
    return keys


def tabulate(records: list) -> tuple[dict[CellKey, Counts], dict[Micro, int]]:
    doses: dict[CellKey, int] = defaultdict(int)
    people: dict[CellKey, set[int]] = defaultdict(set)
    micro: dict[Micro, int] = defaultdict(int)
    for (district, center), vaccine, dose, month, person in records:
        m = (district, center, vaccine, dose, month)
        micro[m] += 1
        for key in release_keys(m):
            doses[key] += 1
            people[key].add(person)
    return {k: Counts(doses[k], len(people[k])) for k in doses}, micro


def in_row_space(rows: list[dict[int, Fraction]], target: dict[int, Fraction]) -> bool:
    """Exact test whether `target` is a rational combination of `rows`."""
    pivots: dict[int, dict[int, Fraction]] = {}

    def reduce(vec: dict[int, Fraction]) -> dict[int, Fraction]:
        vec = dict(vec)
        while True:
            cols = [c for c in vec if c in pivots]
            if not cols:
                return vec
            col = cols[0]
            factor = vec[col]
            for c, v in pivots[col].items():
                new = vec.get(c, Fraction(0)) - factor * v
                if new:
                    vec[c] = new
                else:
                    vec.pop(c, None)

    for row in rows:
        vec = reduce(row)
        if vec:
            col = min(vec)
            lead = vec[col]
            pivots[col] = {c: v / lead for c, v in vec.items()}
    return not reduce(target)


def attacker_recovers(cells: dict[CellKey, Counts], suppressed: frozenset[CellKey]) -> list:
    every_micro = [(d, c, v, n, m) for d in DISTRICTS for c in CENTERS[d]
                   for v, n, m in product(VACCINES, DOSES, MONTHS)]
    # A cell absent from the answers is a zero the attacker can see: so is every micro cell in it.
    unknown = [m for m in every_micro if all(k in cells for k in release_keys(m))]
    column = {m: i for i, m in enumerate(unknown)}

    def functional(key: CellKey) -> dict[int, Fraction]:
        return {column[m]: Fraction(1) for m in unknown if key in release_keys(m)}

    published = [functional(k) for k in cells if k not in suppressed]
    return [k for k in suppressed if in_row_space(published, functional(k))]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=dose_records, min_cell=st.sampled_from([3, 5, 10]))
def test_no_suppressed_cell_follows_from_the_published_ones(records: list, min_cell: int) -> None:
    cells, _ = tabulate(records)
    suppressed = protect(cells, min_cell)
    small = {k for k, c in cells.items() if c.recipients < min_cell}
    assert small <= suppressed, "every cell of 1..k-1 recipients is suppressed"
    assert attacker_recovers(cells, suppressed) == []


def test_a_lone_small_cell_gets_complements_and_the_attacker_then_fails() -> None:
    # District 1 has one person with one dose of PF: without complements, district 1's total
    # minus its other vaccines gives the PF cell away.
    records = [((1, "11"), "AZ", "1", "2026-01-01", p) for p in range(30)]
    records += [((2, "21"), v, "1", "2026-01-01", 100 + p) for v in ("AZ", "PF")
                for p in range(20)]
    records += [((1, "11"), "PF", "1", "2026-01-01", 99)]
    cells, _ = tabulate(records)
    assert attacker_recovers(cells, frozenset({k for k, c in cells.items()
                                               if c.recipients < 10})) != []
    suppressed = protect(cells, 10)
    assert ("VACCINE", 1, "PF") in suppressed
    assert len(suppressed) > 1
    assert attacker_recovers(cells, suppressed) == []


def test_nothing_is_withheld_when_every_cell_is_large() -> None:
    records = [((d, CENTERS[d][0]), "AZ", "1", "2026-01-01", 1000 * d + p)
               for d in DISTRICTS for p in range(12)]
    cells, _ = tabulate(records)
    assert protect(cells, 10) == frozenset()
