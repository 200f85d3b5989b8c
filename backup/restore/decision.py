"""What a restore does to one row: a pure function of its image at T, its changes after T and now.

The rule (T is chosen just before the incident, so the FIRST change to a row after T is taken to
be the damage):
- absent at T: untouched (born after T; we restore lost records, we never roll back new ones);
- the live row already equals its image at T (in the compared columns): untouched;
- no change recorded after T: the damage is newer than what was shipped, so the row is restored
  (re-inserted when missing, written back when it differs);
- the live row still equals the image right after the damage: nothing legitimate touched those
  columns since, so it is restored;
- otherwise a later change touched it: a conflict (skipped unless the caller overwrites).
Comparing only the restored columns lets a later fix of another column (a corrected lot number)
survive a restore of administered_on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from backup.storage.change import Change, Op, Row


class Action(StrEnum):
    REINSERT = "reinsert"
    WRITE_BACK = "write_back"
    CONFLICT = "conflict"
    UNTOUCHED = "untouched"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


@dataclass(frozen=True)
class Comparison:
    """Which columns to compare, and which hold timestamptz values (rendered with any offset)."""

    columns: tuple[str, ...]
    instant_columns: frozenset[str] = frozenset()

    def project(self, row: Row) -> tuple[Any, ...]:
        return tuple(_instant(row.get(name)) if name in self.instant_columns else row.get(name)
                     for name in self.columns)

    def same(self, left: Row | None, right: Row | None) -> bool:
        if left is None or right is None:
            return left is None and right is None
        return self.project(left) == self.project(right)

    def differing(self, left: Row, right: Row) -> tuple[str, ...]:
        return tuple(name for name, a, b in zip(self.columns, self.project(left),
                                                 self.project(right), strict=True) if a != b)


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def image_after(change: Change) -> Row | None:
    """The row right after `change` (None when it removed the row)."""
    return None if change.op in (Op.DELETE, Op.TRUNCATE) else change.new


@dataclass(frozen=True)
class RowHistory:
    """A row's changes after T, kept small: the image right after the first one (the damage,
    reduced to the compared columns), how many there were, and the last position."""

    first_position: int
    damage: Row | None
    changes: int
    last_position: int

    @classmethod
    def start(cls, change: Change, comparison: Comparison) -> RowHistory:
        image = image_after(change)
        damage = None if image is None else {name: image.get(name) for name in comparison.columns}
        return cls(change.position, damage, 1, change.position)

    def then(self, change: Change) -> RowHistory:
        return RowHistory(self.first_position, self.damage, self.changes + 1, change.position)


def history_of(changes: Sequence[Change], comparison: Comparison) -> RowHistory | None:
    """The history of one row's changes after T, given in position order (None when empty)."""
    history = None
    for change in changes:
        history = history.then(change) if history else RowHistory.start(change, comparison)
    return history


def decide(at_t: Row | None, history: RowHistory | None, live: Row | None,
           comparison: Comparison) -> Decision:
    """The action for one row, from its image at T, its changes after T and its live image."""
    if at_t is None:
        return Decision(Action.UNTOUCHED, "absent at T (born after T)")
    if live is not None and comparison.same(at_t, live):
        return Decision(Action.UNTOUCHED, "already as at T")
    restore = Action.REINSERT if live is None else Action.WRITE_BACK
    if history is None:
        return Decision(restore, "no change recorded after T")
    if comparison.same(history.damage, live):
        later = history.changes - 1
        note = f", {later} later change(s) left the compared columns alone" if later else ""
        return Decision(restore, f"unchanged since the damage at position {history.first_position}{note}")
    if live is None:
        return Decision(Action.CONFLICT, f"deleted by a later change (position {history.last_position})")
    return Decision(Action.CONFLICT, f"changed after the damage (last at position {history.last_position})")
