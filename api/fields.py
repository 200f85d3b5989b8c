"""The one validation of each constrained text field, shared by Python and PostgreSQL.

Each pattern is matched whole (`re.fullmatch`, ASCII only) here, and the database CHECK of the
same column is `value ~ '^(pattern)$'` with the very same text (tests/privacy/test_fields.py
reads the constraints back and holds both to accepting exactly the same strings). `$` alone
would let Python accept a trailing newline that PostgreSQL refuses, and `str.isdigit` accepts
"²" and Arabic-Indic digits, which `int` then rejects or silently converts.
"""

from __future__ import annotations

import re

# (table, column) -> pattern, without anchors.
PATTERNS: dict[tuple[str, str], str] = {
    ("recipients", "national_id"): r"[0-9]{10}|[0-9]{13}|[0-9]{17}",
    ("recipients", "phone"): r"\+8801[3-9][0-9]{8}",
}
# A database id as text (GraphQL IDs, token subjects): bigint range, ASCII digits.
ID_PATTERN = r"[0-9]{1,18}"

_COMPILED = {key: re.compile(pattern, re.ASCII) for key, pattern in PATTERNS.items()}
_ID = re.compile(ID_PATTERN, re.ASCII)


def valid(table: str, column: str, value: str) -> bool:
    """Whether `value` passes the column's check (the database's CHECK agrees)."""
    return _COMPILED[(table, column)].fullmatch(value) is not None


def is_id(value: str) -> bool:
    """Whether `value` is a database id written in ASCII digits."""
    return _ID.fullmatch(value) is not None


def check_sql(table: str, column: str) -> str:
    """The CHECK expression for the column, as the migration writes it."""
    return f"{column} ~ '^({PATTERNS[(table, column)]})$'"
