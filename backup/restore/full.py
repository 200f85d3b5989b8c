"""Disaster recovery: rebuild every table of a snapshot as at T in an empty database.

Schema from the snapshot's DDL, chunks loaded with COPY, then the segments' changes up to T
replayed, all in one transaction (a failure leaves the target as empty as it was). Row counts
are verified against the manifest before replay and reported after it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from backup.restore.asof import LiveTable, replay
from backup.restore.errors import RestoreError
from backup.restore.predicate_sql import quote_identifier
from backup.restore.source import History, load_history
from backup.storage.codec import Key
from backup.storage.manifest import TableImage
from backup.storage.reader import read_chunk, read_schema
from backup.storage.repository import Repository


@dataclass(frozen=True)
class TableRestore:
    table: str
    snapshot_rows: int
    loaded_rows: int
    changes_replayed: int
    rows_at_t: int


@dataclass(frozen=True)
class FullRestoreReport:
    as_of: datetime
    snapshot_id: str
    segments: int
    tables: tuple[TableRestore, ...]
    seconds: float


_USER_TABLES = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1
"""


async def restore_full(target_url: str, repo: Repository, key: Key | None,
                       as_of: datetime) -> FullRestoreReport:
    """Rebuild the repository's tables as at `as_of` in the empty database at `target_url`.

    Raises RestorePlanError (no snapshot old enough) and RestoreError (target not empty,
    a count that disagrees with the manifest, a PostgreSQL failure: nothing is kept then).
    """
    started = time.perf_counter()
    history = load_history(repo, as_of, key)
    try:
        conn = await asyncpg.connect(target_url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise RestoreError(f"cannot connect to the target database: {exc}") from exc
    try:
        existing = [row[0] for row in await conn.fetch(_USER_TABLES)]
        if existing:
            shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
            raise RestoreError(f"target database is not empty (it has {shown}); give the URL of an "
                               "empty database (CREATE DATABASE ...)")
        async with conn.transaction():
            await conn.execute(read_schema(repo, history.snapshot, key))
            tables = [await _restore_table(conn, repo, key, image, history, as_of)
                      for image in history.snapshot.tables]
    except asyncpg.PostgresError as exc:
        raise RestoreError(f"full restore failed in PostgreSQL, the target was left empty: {exc}") from exc
    finally:
        await conn.close()
    return FullRestoreReport(as_of, history.snapshot.id, len(history.segments), tuple(tables),
                             round(time.perf_counter() - started, 3))


async def _restore_table(conn: asyncpg.Connection, repo: Repository, key: Key | None, image: TableImage,
                         history: History, as_of: datetime) -> TableRestore:
    table = LiveTable(image.schema, image.name, tuple(c.name for c in image.columns),
                      {c.name: c.type for c in image.columns}, image.primary_key)
    for chunk in image.chunks:
        await conn.copy_to_table(image.name, schema_name=image.schema, format="text",
                                 source=io.BytesIO(read_chunk(repo, chunk, key)), columns=list(table.columns))
    loaded = await conn.fetchval(f"SELECT count(*) FROM {table.qualified}")
    if loaded != image.rows:
        raise RestoreError(f"table {image.name}: loaded {loaded} rows but snapshot {history.snapshot.id} "
                           f"records {image.rows}; run 'vaxvault backup verify --deep'")
    replayed = 0
    if table.primary_key:
        replayed = await replay(conn, repo, key, history, table, table.qualified, f"vv_replay_{image.name}",
                                as_of)
    for column in table.columns:
        if table.types[column] in ("bigint", "integer", "smallint"):
            await _continue_identity(conn, table, column)
    rows = await conn.fetchval(f"SELECT count(*) FROM {table.qualified}")
    return TableRestore(image.name, image.rows, loaded, replayed, rows)


async def _continue_identity(conn: asyncpg.Connection, table: LiveTable, column: str) -> None:
    """Make an identity column continue after the restored rows, not from 1."""
    sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table.qualified, column)
    if sequence is None:
        return
    highest = await conn.fetchval(f"SELECT max({quote_identifier(column)})::bigint FROM {table.qualified}")
    await conn.execute("SELECT setval($1::regclass, $2, $3)", sequence, highest or 1, highest is not None)
