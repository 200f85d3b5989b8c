"""A restore as an admin asks for it over GraphQL, checked and compiled to the restore module's request.

The filter is structured (column, operator, values), never SQL text: it is compiled to the
predicate AST of backup/restore/predicate.py, whose compiler sends every value as a parameter. Columns and
values are checked here against the live table's catalog, so a bad one is a clear
BAD_USER_INPUT before any work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from api.db.connect import connect
from api.domain.errors import BadUserInput
from backup.errors import BackupError
from backup.restore.predicate import Expr, conjunction, from_filter
from backup.restore.records import ConflictPolicy, RestoreRequest

# The registry tables a restore may write to (the audit log is append-only, never restored).
RESTORABLE_TABLES = ("recipients", "doses", "centers", "districts", "vaccines")
MAX_CONDITIONS = 20
MAX_VALUES = 1000
MAX_VALUE_LENGTH = 200
MAX_SAMPLE = 100
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


class Operator(StrEnum):
    EQ = "eq"
    IN = "in"
    BETWEEN = "between"
    IS_NULL = "isNull"


_ARITY = {Operator.EQ: (1, 1), Operator.BETWEEN: (2, 2), Operator.IS_NULL: (0, 0),
          Operator.IN: (1, MAX_VALUES)}


@dataclass(frozen=True)
class Condition:
    column: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestoreOrder:
    table: str
    as_of: datetime
    conditions: tuple[Condition, ...] = ()
    columns: tuple[str, ...] | None = None
    on_conflict: ConflictPolicy = ConflictPolicy.SKIP
    with_parents: bool = False
    sample_size: int = 10


async def column_types(database_url: str, table: str) -> dict[str, str]:
    """column -> type of a live registry table, read on a short connection of its own (the
    request's pooled transaction stays closed while the slow restore work runs)."""
    conn = await connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type "
            "FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum", f"public.{table}")
    finally:
        await conn.close()
    return {row["name"]: row["type"] for row in rows}


async def to_request(database_url: str, order: RestoreOrder, actor: str) -> RestoreRequest:
    """The restore module's request for `order`; BadUserInput naming the first bad part."""
    if order.table not in RESTORABLE_TABLES:
        raise BadUserInput(f"table {order.table!r} cannot be restored; choose one of "
                           f"{', '.join(RESTORABLE_TABLES)}")
    if order.as_of.tzinfo is None:
        raise BadUserInput(f"asOf {order.as_of.isoformat()} has no UTC offset; add one, e.g. "
                           f"{order.as_of.isoformat()}Z")
    if not 0 <= order.sample_size <= MAX_SAMPLE:
        raise BadUserInput(f"sample {order.sample_size} is out of range; give 0 to {MAX_SAMPLE}")
    types = await column_types(database_url, order.table)
    if order.columns is not None:
        if not order.columns:
            raise BadUserInput("columns is empty; leave it out to restore every column")
        for column in order.columns:
            _check_column(column, types, order.table, "columns")
    if len(order.conditions) > MAX_CONDITIONS:
        raise BadUserInput(f"filter has {len(order.conditions)} conditions; at most "
                           f"{MAX_CONDITIONS} are allowed")
    return RestoreRequest(table=order.table, as_of=order.as_of,
                          where=compile_filter(order.conditions, types, order.table),
                          columns=order.columns, on_conflict=order.on_conflict,
                          with_parents=order.with_parents, actor=actor,
                          sample_size=order.sample_size)


def compile_filter(conditions: tuple[Condition, ...], types: dict[str, str],
                   table: str) -> Expr | None:
    """The conditions ANDed into one predicate AST (None when there are none)."""
    parts = []
    for n, condition in enumerate(conditions):
        where = f"filter[{n}]"
        _check_column(condition.column, types, table, f"{where}.column")
        low, high = _ARITY[condition.operator]
        if not low <= len(condition.values) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise BadUserInput(f"{where}: {condition.operator.name} takes {wanted} value(s), got "
                               f"{len(condition.values)}")
        for value in condition.values:
            _check_value(value, types[condition.column], f"{where} ({condition.column})")
        try:
            parts.append(from_filter(condition.column, condition.operator.value,
                                     list(condition.values)))
        except BackupError as exc:
            raise BadUserInput(f"{where}: {exc}") from exc
    return conjunction(parts)


def _check_column(column: str, types: dict[str, str], table: str, where: str) -> None:
    if not _NAME.match(column) or column not in types:
        raise BadUserInput(f"{where}: table {table} has no column {column!r}; its columns are "
                           f"{', '.join(types)}")


def _check_value(value: str, kind: str, where: str) -> None:
    """Refuse a value the column's type cannot hold, with the form it takes."""
    if len(value) > MAX_VALUE_LENGTH:
        raise BadUserInput(f"{where}: a value is longer than {MAX_VALUE_LENGTH} characters")
    try:
        if kind in _INTEGER_TYPES:
            if not _INTEGER.match(value):
                raise ValueError
        elif kind == "numeric" or kind.startswith("numeric("):
            Decimal(value)
        elif kind == "date":
            date.fromisoformat(value)
        elif kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError
        elif kind.startswith("timestamp"):
            moment = datetime.fromisoformat(value)
            if kind.endswith("with time zone") and moment.tzinfo is None:
                raise ValueError
    except (ValueError, InvalidOperation):
        raise BadUserInput(f"{where}: {value!r} is not a valid {kind}{_example(kind)}") from None


def _example(kind: str) -> str:
    examples = {"date": "2021-10-13", "boolean": "true", "timestamp with time zone":
                "2021-10-13T08:00:00+06:00", "timestamp without time zone": "2021-10-13T08:00:00"}
    if kind in _INTEGER_TYPES:
        return " (a whole number, e.g. 42)"
    return f" (e.g. {examples[kind]})" if kind in examples else ""
