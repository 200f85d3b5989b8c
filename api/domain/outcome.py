"""Expected failures of writes, returned (not raised) so the schema shows them as union members."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Invalid:
    """An input value breaks a rule; `field` names the input field, `message` the fix."""

    field: str
    message: str


@dataclass(frozen=True)
class Duplicate:
    """A unique value is taken already."""

    field: str
    value: str
    message: str
