"""WHERE clauses built with numbered asyncpg parameters, so values never enter SQL text."""

from __future__ import annotations

from typing import Any


class Conditions:
    """Collects `clause AND clause ...`; `{p}` in a clause stands for its one parameter."""

    def __init__(self, args: list[Any] | None = None) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = list(args or [])

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, value: Any = None) -> Conditions:
        if "{p}" in clause:
            clause = clause.replace("{p}", self.param(value))
        self.clauses.append(clause)
        return self

    def add_if(self, value: Any, clause: str) -> Conditions:
        """Add `clause` only when the optional filter `value` was given."""
        if value is not None:
            self.add(clause, value)
        return self

    def where(self) -> str:
        return f"WHERE {' AND '.join(self.clauses)}" if self.clauses else ""
