"""One captured change to one row (or one TRUNCATE), as shipped in segments and read by restore.

The shared vocabulary of change capture, incremental segments, find-loss and restore.
Row images are JSON objects keyed by column name, exactly as PostgreSQL's ``to_jsonb(row)``
renders them (dates 'YYYY-MM-DD', timestamptz ISO 8601 with offset, bigint as numbers), so the
server can turn them back into typed rows with ``jsonb_populate_record``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

Row = dict[str, Any]


class Op(StrEnum):
    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"
    TRUNCATE = "T"


@dataclass(frozen=True)
class Change:
    """A change, ordered by `position` (a total order consistent with commit order per row).

    key: primary-key columns of the row (None for TRUNCATE).
    old: the row before (UPDATE, DELETE); new: the row after (INSERT, UPDATE).
    committed_at: when the change's transaction committed (track_commit_timestamp), or the
    best bound the capture could give (see backup/FORMAT.md).
    """

    position: int
    txid: int
    committed_at: datetime
    table: str
    op: Op
    key: Row | None
    old: Row | None
    new: Row | None
