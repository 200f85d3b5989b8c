"""`vaxvault backup list`: a summary per stage and the newest units, a fixed size whatever the
history; `--all` adds every unit (the old listing, which grows with the history)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from backup.inventory import StageSummary, UnitState, overview
from backup.stages import Stage
from backup.storage.codec import Key

DEFAULT_LAST = 20


def _stage_line(s: StageSummary) -> str:
    if not s.reachable:
        return f"{s.stage:11} unreachable"
    states = ", ".join(f"{n} {state}" for state, n in sorted(s.counts.items())) or "empty"
    return (f"{s.stage:11} {s.source:6} {s.snapshots:>9} {s.segments:>9} {s.rows:>11} {s.bytes:>13}  "
            f"{s.oldest_snapshot or '-':24} {s.newest_snapshot or '-':24} {s.newest_segment or '-':24} "
            f"{states}")


def _unit_lines(units: list[UnitState], names: list[str]) -> list[str]:
    lines = [f"{'KIND':9} {'ID':24} {'ROWS':>9} {'BYTES':>11}  " + "  ".join(f"{n:11}" for n in names)]
    lines += [f"{u.kind:9} {u.id:24} {u.rows:>9} {u.bytes:>11}  "
              + "  ".join(f"{u.states[n]:11}" for n in names) for u in units]
    return lines


def list_output(stages: list[Stage], key: Key | None, every: bool,
                last: int = DEFAULT_LAST) -> tuple[str, dict[str, Any]]:
    """(text, JSON data) of `backup list`: per stage its counts, ends and totals, then the newest
    `last` units (every unit with `every`). Raises nothing for an unreachable stage (shown so)."""
    found = overview(stages, key, None if every else last)
    units = found.units
    data = {"stages": [asdict(s) for s in found.stages], "units": [asdict(u) for u in units],
            "total_units": found.total}
    if not found.total:
        return "no snapshots or segments yet; run 'vaxvault backup run --full'", data
    names = [s.name for s in stages]
    lines = [f"{'STAGE':11} {'SOURCE':6} {'SNAPSHOTS':>9} {'SEGMENTS':>9} {'ROWS':>11} {'BYTES':>13}  "
             f"{'OLDEST SNAPSHOT':24} {'NEWEST SNAPSHOT':24} {'NEWEST SEGMENT':24} STATES"]
    lines += [_stage_line(s) for s in found.stages]
    shown = "every unit" if every or len(units) == found.total else \
        f"the newest {len(units)} of {found.total} units ('--all' lists every one)"
    lines += ["", f"{shown}, oldest first:", *_unit_lines(units, names)]
    return "\n".join(lines), data
