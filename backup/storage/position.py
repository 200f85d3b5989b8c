"""Positions: the `pg_snapshot` texts (`xmin:xmax:xip,...`) at which the change log is cut.

A position stands for the set of transactions visible in it. `includes(later, earlier)` tells
whether every transaction visible in `earlier` is visible in `later`, which is how a restore knows
that the live change log (trimmed up to the watermark) joins the shipped segments without a hole.
"""

from __future__ import annotations

from dataclasses import dataclass

from backup.errors import FormatError


@dataclass(frozen=True)
class Position:
    xmin: int
    xmax: int
    running: frozenset[int]  # xip: in progress at the cut, so not visible

    def visible(self, txid: int) -> bool:
        return txid < self.xmin or (txid < self.xmax and txid not in self.running)


def parse_position(text: str) -> Position:
    """Parse `xmin:xmax:xip1,xip2`; FormatError for anything else."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError("expected three fields")
        xmin, xmax = int(parts[0]), int(parts[1])
        running = frozenset(int(x) for x in parts[2].split(",") if x)
    except ValueError as exc:
        raise FormatError(f"{text!r} is not a position (pg_snapshot xmin:xmax:xip): {exc}") from exc
    if xmin > xmax or any(not xmin <= x < xmax for x in running):
        raise FormatError(f"{text!r} is not a position: xmin <= xip < xmax must hold")
    return Position(xmin, xmax, running)


def format_position(position: Position) -> str:
    """Inverse of parse_position (PostgreSQL's rendering: xip ascending)."""
    return f"{position.xmin}:{position.xmax}:{','.join(str(x) for x in sorted(position.running))}"


def includes(later: str, earlier: str) -> bool:
    """True when every transaction visible in `earlier` is visible in `later`."""
    if later == earlier:
        return True
    new, old = parse_position(later), parse_position(earlier)
    # Above new.xmax nothing is visible in `new`, so `old` may only have running ones there.
    beyond = old.xmax - new.xmax
    if beyond > 0 and (beyond > len(old.running)
                       or any(old.visible(t) for t in range(new.xmax, old.xmax))):
        return False
    # Below new.xmax only new's running transactions are invisible in `new`.
    return not any(old.visible(t) for t in new.running)
