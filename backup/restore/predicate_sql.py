"""Compiling a predicate for PostgreSQL, and telling whether a chunk can hold a matching row.

`validate` checks an expression against a table's columns and their types, `to_sql` compiles it
to SQL with ``$n`` text parameters (values never enter the SQL text; the server casts them to the
column's type), and `may_match` prunes chunks by their key range and date min/max.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from backup.restore.errors import PredicateError
from backup.restore.predicate import (
    And,
    Between,
    Call,
    Column,
    Compare,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Or,
    columns_of,
    render,
)

TEXT_TYPES = frozenset({"text", "character varying", "character", "varchar", "citext"})


# --- validation and SQL --------------------------------------------------------------------

def validate(expr: Expr, column_types: Mapping[str, str], table: str) -> None:
    """Raise PredicateError unless every column exists and functions get text arguments."""
    unknown = sorted(columns_of(expr) - set(column_types))
    if unknown:
        raise PredicateError(
            f"table {table} has no column {', '.join(unknown)}; "
            f"its columns are {', '.join(sorted(column_types))}")
    for call in _calls(expr):
        kind = _type_of(call.argument, column_types)
        if kind is not None and kind not in TEXT_TYPES:
            raise PredicateError(f"{call.function}() takes text, not {kind} ({render(call.argument)})")


def _calls(expr: Expr) -> list[Call]:
    match expr:
        case Call(_, argument):
            return [expr, *_calls(argument)]
        case Compare(_, left, right):
            return _calls(left) + _calls(right)
        case InList(operand, _, _) | IsNull(operand, _):
            return _calls(operand)
        case Between(operand, low, high, _):
            return _calls(operand) + _calls(low) + _calls(high)
        case And(items) | Or(items):
            return [call for item in items for call in _calls(item)]
        case Not(item):
            return _calls(item)
    return []


def _type_of(expr: Expr, column_types: Mapping[str, str]) -> str | None:
    if isinstance(expr, Column):
        return column_types.get(expr.name)
    if isinstance(expr, Call):
        return "text"
    return None


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A text literal for SQL run with standard_conforming_strings on (quotes doubled, nothing else
    special); PredicateError for a NUL character, which no PostgreSQL text can hold."""
    if "\x00" in value:
        raise PredicateError("a value in the predicate holds a NUL character; remove it")
    return "'" + value.replace("'", "''") + "'"


class _Compiler:
    def __init__(self, column_types: Mapping[str, str], first_parameter: int, alias: str | None,
                 inline: bool = False):
        self.column_types = column_types
        self.params: list[str] = []
        self.first = first_parameter
        self.prefix = f"{quote_identifier(alias)}." if alias else ""
        self.inline = inline

    def value(self, literal: Literal, kind: str | None) -> str:
        # Values travel as text parameters and the server casts them to the column's type,
        # so a bad date is the server's clear error, never SQL text.
        if literal.value is None:
            return "NULL"
        if isinstance(literal.value, bool):
            return "TRUE" if literal.value else "FALSE"
        if self.inline:
            placeholder = f"{quote_literal(str(literal.value))}::text"
        else:
            self.params.append(str(literal.value))
            placeholder = f"${self.first + len(self.params) - 1}::text"
        if kind is None:
            kind = "text" if isinstance(literal.value, str) else "numeric"
        return placeholder if kind == "text" else f"{placeholder}::{kind}"

    def expr(self, expr: Expr, kind: str | None = None) -> str:
        match expr:
            case Column(name):
                return self.prefix + quote_identifier(name)
            case Literal():
                return self.value(expr, kind)
            case Call(function, argument):
                return f"{function}({self.expr(argument, 'text')})"
            case Compare(op, left, right):
                kind = _type_of(left, self.column_types) or _type_of(right, self.column_types)
                return f"({self.expr(left, kind)} {op} {self.expr(right, kind)})"
            case InList(operand, values, negated):
                kind = _type_of(operand, self.column_types)
                listed = ", ".join(self.expr(value, kind) for value in values)
                return f"({self.expr(operand)} {'NOT IN' if negated else 'IN'} ({listed}))"
            case Between(operand, low, high, negated):
                kind = _type_of(operand, self.column_types)
                word = "NOT BETWEEN" if negated else "BETWEEN"
                return (f"({self.expr(operand)} {word} {self.expr(low, kind)} "
                        f"AND {self.expr(high, kind)})")
            case IsNull(operand, negated):
                return f"({self.expr(operand)} IS {'NOT NULL' if negated else 'NULL'})"
            case And(items):
                return "(" + " AND ".join(self.expr(item) for item in items) + ")"
            case Or(items):
                return "(" + " OR ".join(self.expr(item) for item in items) + ")"
            case Not(item):
                return f"(NOT {self.expr(item)})"
        raise TypeError(expr)


def to_sql(expr: Expr, column_types: Mapping[str, str], first_parameter: int = 1,
           alias: str | None = None) -> tuple[str, list[str]]:
    """Compile a validated expression to SQL text with $n text parameters and their values."""
    compiler = _Compiler(column_types, first_parameter, alias)
    return compiler.expr(expr), compiler.params


def to_inline_sql(expr: Expr, column_types: Mapping[str, str]) -> str:
    """Compile with values as quoted literals, for the one place that takes no parameters:
    COPY ... FROM STDIN WHERE. Only valid with standard_conforming_strings on (the caller sets it)."""
    return _Compiler(column_types, 1, None, inline=True).expr(expr)


# --- chunk pruning ---------------------------------------------------------------------------

Ranges = Mapping[str, tuple[Any, Any]]


def may_match(expr: Expr | None, ranges: Ranges) -> bool:
    """False only when no row whose columns lie within `ranges` (min, max) can satisfy expr.

    Conservative: anything it cannot reason about may match. NULLs are never excluded by
    an IS NULL test because ranges carry no null counts.
    """
    if expr is None:
        return True
    match expr:
        case And(items):
            return all(may_match(item, ranges) for item in items)
        case Or(items):
            return any(may_match(item, ranges) for item in items)
        case Compare(op, Column(name), Literal() as literal) if name in ranges:
            return _compare_may_match(op, ranges[name], literal)
        case Compare(op, Literal() as literal, Column(name)) if name in ranges:
            mirrored = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            return _compare_may_match(mirrored, ranges[name], literal)
        case InList(Column(name), values, False) if name in ranges:
            return any(_compare_may_match("=", ranges[name], value) for value in values)
        case Between(Column(name), Literal() as low, Literal() as high, False) if name in ranges:
            return (_compare_may_match(">=", ranges[name], low)
                    and _compare_may_match("<=", ranges[name], high))
    return True


def _compare_may_match(op: str, bounds: tuple[Any, Any], literal: Literal) -> bool:
    low, high = bounds
    if low is None or high is None:
        return True
    if literal.value is None:
        return False  # a comparison with NULL is never true
    value = _coerce(literal.value, low)
    if value is None:
        return True
    try:
        if op == "=":
            return bool(low <= value <= high)
        if op == "<":
            return bool(low < value)
        if op == "<=":
            return bool(low <= value)
        if op == ">":
            return bool(high > value)
        if op == ">=":
            return bool(high >= value)
    except TypeError:
        return True
    return True


def _coerce(value: object, like: object) -> Any:
    """The literal as the type of a range bound, or None when it does not convert."""
    try:
        if isinstance(like, datetime):
            return datetime.fromisoformat(str(value))
        if isinstance(like, date):
            return date.fromisoformat(str(value))
        if isinstance(like, bool):
            return None
        if isinstance(like, (int, Decimal, float)):
            return Decimal(str(value))
        if isinstance(like, str):
            return str(value)
    except (ValueError, InvalidOperation):
        return None
    return None
