"""Statistical disclosure control: which cells of the released count tables are suppressed.

Counts-only roles read from one national *release*: the grand total, the district totals, and
for each breakdown X (center, vaccine, dose number, month) the table district x X with its
margins. Every answer they get is a cell of these tables, so protecting the release once
protects every sequence of their queries (api/domain/release.py keeps queries to such cells).

Protection is primary suppression (a cell counting 1 to k-1 recipients) plus complementary
suppression: further cells are suppressed until no suppressed cell is a linear combination of
published values, checked exactly by elimination over the additive table relations (row cells
sum to the district total, column cells to the X total, margins to the grand total). Cells
absent from the release are zeros the reader can infer, so they are known values, never
complements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# (breakdown, district id, value): (None, None, None) is the grand total, (None, d, None) the
# total of district d, (X, None, v) the national total of X = v, (X, d, v) an interior cell.
# CENTER nests in DISTRICT, so its table has no national column totals.
CellKey = tuple[str | None, int | None, str | None]
BREAKDOWNS = ("CENTER", "VACCINE", "DOSE_NUMBER", "MONTH")
NESTED = frozenset({"CENTER"})
GRAND_TOTAL: CellKey = (None, None, None)
# A prime near 2**61: elimination in this field agrees with the rationals for tables whose
# relations have coefficients 0 and +-1 (a pivot would need a factor of this size to differ).
_PRIME = 2**61 - 1


@dataclass(frozen=True)
class Counts:
    doses: int
    recipients: int


@dataclass(frozen=True)
class Relation:
    """`parts` sum to `total` (for doses; distinct recipients are at most that sum)."""

    parts: tuple[CellKey, ...]
    total: CellKey


def relations(cells: Iterable[CellKey]) -> list[Relation]:
    """The additive relations among the release's non-zero cells (zeros are left out)."""
    present = set(cells)
    rows: dict[tuple[str, int], list[CellKey]] = {}
    columns: dict[tuple[str, str | None], list[CellKey]] = {}
    margins: dict[str, list[CellKey]] = {}
    districts: list[CellKey] = []
    for key in sorted(present, key=repr):
        breakdown, district, value = key
        if breakdown is None:
            if district is not None:
                districts.append(key)
        elif district is None:
            margins.setdefault(breakdown, []).append(key)
        else:
            rows.setdefault((breakdown, district), []).append(key)
            if breakdown not in NESTED:
                columns.setdefault((breakdown, value), []).append(key)
    out = [Relation(tuple(districts), GRAND_TOTAL)] if districts else []
    out += [Relation(tuple(parts), (None, district, None))
            for (_, district), parts in rows.items()]
    out += [Relation(tuple(parts), (breakdown, None, value))
            for (breakdown, value), parts in columns.items()]
    out += [Relation(tuple(parts), GRAND_TOTAL) for parts in margins.values()]
    return out


def determined(rels: list[Relation], suppressed: set[CellKey]) -> list[CellKey]:
    """Suppressed cells whose value follows from the published ones, by exact elimination."""
    index = {key: i for i, key in enumerate(sorted(suppressed, key=repr))}
    pivots: dict[int, dict[int, int]] = {}
    for rel in rels:
        row: dict[int, int] = {}
        for key, coefficient in [*((p, 1) for p in rel.parts), (rel.total, _PRIME - 1)]:
            if key in index:
                col = index[key]
                row[col] = (row.get(col, 0) + coefficient) % _PRIME
        row = {c: v for c, v in row.items() if v}
        _reduce(row, pivots)
        if not row:
            continue
        col = min(row)
        inverse = pow(row[col], _PRIME - 2, _PRIME)
        row = {c: v * inverse % _PRIME for c, v in row.items()}
        for other in pivots.values():
            factor = other.get(col)
            if factor:
                _subtract(other, row, factor)
        pivots[col] = row
    keys = sorted(index, key=index.__getitem__)
    return [keys[col] for col, row in pivots.items() if len(row) == 1]


def _reduce(row: dict[int, int], pivots: dict[int, dict[int, int]]) -> None:
    for col in [c for c in row if c in pivots]:
        factor = row.get(col)
        if factor:
            _subtract(row, pivots[col], factor)


def _subtract(row: dict[int, int], pivot: dict[int, int], factor: int) -> None:
    for col, value in pivot.items():
        new = (row.get(col, 0) - factor * value) % _PRIME
        if new:
            row[col] = new
        else:
            row.pop(col, None)


def protect(cells: Mapping[CellKey, Counts], min_cell: int) -> frozenset[CellKey]:
    """The cells to suppress: every cell of 1..min_cell-1 recipients, plus complements.

    Complements are the smallest published cells sharing a relation with an exposed one, so
    the fewest people's counts are withheld; the result leaves no suppressed cell determined.
    """
    suppressed = {key for key, c in cells.items() if 0 < c.recipients < min_cell}
    if not suppressed:
        return frozenset()
    rels = relations(cells)
    by_cell: dict[CellKey, list[Relation]] = {}
    for rel in rels:
        for key in (*rel.parts, rel.total):
            by_cell.setdefault(key, []).append(rel)
    while True:
        _cover_single_gaps(rels, suppressed, cells)
        exposed = determined(rels, suppressed)
        if not exposed:
            return frozenset(suppressed)
        complement = _smallest_open(
            (key for rel in by_cell.get(exposed[0], []) for key in (*rel.parts, rel.total)),
            suppressed, cells)
        if complement is None:
            # Every neighbour is suppressed yet the cell is still determined: withhold the
            # whole release rather than loop (never met on real tables; kept for termination).
            return frozenset(cells)
        suppressed.add(complement)


def _cover_single_gaps(rels: list[Relation], suppressed: set[CellKey],
                       cells: Mapping[CellKey, Counts]) -> None:
    """The cheap rule first: no relation may have exactly one suppressed member."""
    changed = True
    while changed:
        changed = False
        for rel in rels:
            members = (*rel.parts, rel.total)
            if sum(key in suppressed for key in members) == 1:
                complement = _smallest_open(members, suppressed, cells)
                if complement is not None:
                    suppressed.add(complement)
                    changed = True


def _smallest_open(keys: Iterable[CellKey], suppressed: set[CellKey],
                   cells: Mapping[CellKey, Counts]) -> CellKey | None:
    open_keys = {key for key in keys if key not in suppressed and key in cells}
    if not open_keys:
        return None
    return min(open_keys, key=lambda k: (cells[k].doses, k[0] is None, repr(k)))
