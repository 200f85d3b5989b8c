"""A table as it was at T, rebuilt in a TEMP table from the repository alone.

The base snapshot's chunks that can hold a matching row are loaded with COPY, then the table's
changes committed after the snapshot and up to T are replayed, collapsed to the last image per
key (typed rows, see backup/restore/changes.py). Rows touched by a replayed change are rebuilt even when their
chunk was pruned, because the change carries the full row image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from backup.restore.changes import apply_changes, create_change_table, load_live_log, load_segments
from backup.restore.errors import RestorePlanError
from backup.restore.object_stream import decoded_pieces
from backup.restore.predicate import Expr
from backup.restore.predicate_sql import may_match, quote_identifier, to_inline_sql
from backup.restore.source import LIVE_LOG, History
from backup.storage.codec import Key
from backup.storage.manifest import Chunk, TableImage
from backup.storage.repository import Repository


@dataclass(frozen=True)
class LiveTable:
    """The live table a restore writes to: its columns (in the snapshot's order) and key."""

    schema: str
    name: str
    columns: tuple[str, ...]
    types: dict[str, str]
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.name)}"


@dataclass(frozen=True)
class AsOfImage:
    """The temp table holding the rows at T, and what it took to build it."""

    temp: str
    chunks_read: int
    chunks_total: int
    rows_loaded: int  # rows of the read chunks that matched the predicate at the snapshot
    changes_replayed: int


_COLUMNS = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attgenerated = '' ORDER BY a.attnum
"""


async def describe_live(conn: asyncpg.Connection, image: TableImage) -> LiveTable:
    """The live table of a snapshot image; RestorePlanError when it is gone or lost columns."""
    qualified = f"{quote_identifier(image.schema)}.{quote_identifier(image.name)}"
    rows = await conn.fetch(_COLUMNS, qualified)
    types = {row["name"]: row["type"] for row in rows}
    if not types:
        raise RestorePlanError(f"table {image.schema}.{image.name} does not exist in the live database; "
                               "use 'vaxvault restore full' to rebuild a lost database")
    missing = [c.name for c in image.columns if c.name not in types]
    if missing:
        raise RestorePlanError(f"live table {image.name} has no column(s) {', '.join(missing)} that the "
                               "snapshot holds; the schema changed since T")
    columns = tuple(c.name for c in image.columns)
    return LiveTable(image.schema, image.name, columns, {c: types[c] for c in columns}, image.primary_key)


def chunk_ranges(table: TableImage, chunk: Chunk, types: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    """Column -> (min, max) of a chunk: its date bounds and, for a one-column key, its key range."""
    ranges: dict[str, tuple[Any, Any]] = {}
    for name, (low, high) in chunk.bounds.items():
        ranges[name] = (_typed(low, types.get(name, "")), _typed(high, types.get(name, "")))
    if len(table.primary_key) == 1 and chunk.first_key and chunk.last_key:
        column = table.primary_key[0]
        ranges[column] = (chunk.first_key.get(column), chunk.last_key.get(column))
    return ranges


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "date":
            return date.fromisoformat(value)
        if kind.startswith("timestamp"):
            return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return value


async def build_as_of(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                      live: LiveTable, as_of: datetime, where: Expr | None, temp: str) -> AsOfImage:
    """Create TEMP table `temp` (dropped at commit) holding the rows of `live` as at `as_of`.

    Must run inside a transaction. Raises RestorePlanError when the snapshot lacks the table.
    """
    image = history.snapshot.table(live.name)
    columns = ", ".join(quote_identifier(c) for c in live.columns)
    keys = ", ".join(quote_identifier(c) for c in live.primary_key)
    await conn.execute(f"CREATE TEMP TABLE {quote_identifier(temp)} ON COMMIT DROP AS "
                       f"SELECT {columns} FROM {live.qualified} WITH NO DATA")
    await conn.execute(f"ALTER TABLE {quote_identifier(temp)} ADD PRIMARY KEY ({keys})")
    chunks = [c for c in image.chunks if may_match(where, chunk_ranges(image, c, live.types))]
    # Rows that do not match at the snapshot are dropped while loading: a row that came to
    # match by T was changed after the snapshot, and replay brings its full image back.
    await conn.execute("SET LOCAL standard_conforming_strings = on")
    condition = to_inline_sql(where, live.types) if where is not None else None
    for chunk in chunks:
        await conn.copy_to_table(temp, source=decoded_pieces(repo, chunk.object, key),
                                 columns=list(live.columns), format="text", where=condition)
    loaded = await conn.fetchval(f"SELECT count(*) FROM {quote_identifier(temp)}")
    replayed = await replay(conn, repo, key, history, live, quote_identifier(temp), f"{temp}_replay", as_of)
    await conn.execute(f"ANALYZE {quote_identifier(temp)}")
    return AsOfImage(temp, len(chunks), len(image.chunks), loaded, replayed)


async def replay(conn: asyncpg.Connection, repo: Repository, key: Key | None, history: History,
                 live: LiveTable, target: str, changes: str, as_of: datetime) -> int:
    """Bring `target` (quoted) from the snapshot to `as_of` with the history's changes of the table
    (segments, then the live log when the history has it), using change table `changes`.
    Returns how many changes were replayed."""
    await create_change_table(conn, changes, target, live.columns, live.primary_key)
    replayed = await load_segments(conn, repo, key, history.segments, live.name, changes, target,
                                   live.columns, until=as_of)
    if history.live_log:
        replayed += await load_live_log(conn, LIVE_LOG, live.name, changes, target, live.columns,
                                        history.snapshot.position, until=as_of)
    await apply_changes(conn, changes, target, live.columns, live.primary_key)
    return replayed
