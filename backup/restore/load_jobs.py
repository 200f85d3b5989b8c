"""The work of a full restore between the schema and the last transaction, as a job graph that
several connections share (backup.restore.job_graph).

Per table: load (TRUNCATE and one COPY FREEZE in one transaction), its primary key's index, the
replay of the segments' changes up to T (upserts need that index; unique keys come after, so a
replayed swap of two values never trips them), and the indexes foreign keys reference. Once
every table is there, one short transaction adds the foreign keys NOT VALID (it takes locks that
an index build on the same tables would make it wait for, so it runs before the rest of them).
Then one job per table validates its foreign keys, first thing: a VALIDATE waits for index builds
of its own table only (and for another VALIDATE of it), so the longest one runs beside the other
tables' index builds, and the table's other indexes follow it, any of them on any connection;
the run ends with many short index builds that two connections share evenly. Every job commits
on its own; the marker (backup.restore.unfinished) is what says the whole is not a registry yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import asyncpg

from backup.restore.asof import LiveTable, replay
from backup.restore.bulk_load import PRIMARY, REFERENCED, REST, ForeignKey, SetAside
from backup.restore.errors import RestoreError
from backup.restore.job_graph import Job
from backup.restore.source import History, segments_in_window
from backup.restore.table_copy import copy_table
from backup.storage.codec import Key
from backup.storage.manifest import TableImage
from backup.storage.repository import Repository

FOREIGN_KEYS = "foreign keys added (NOT VALID)"


@dataclass(frozen=True)
class TableAtT:
    table: str
    loaded: int
    replayed: int
    rows: int


@dataclass(frozen=True)
class Source:
    """Where the rows come from: the repository, its key, the history up to T, the decoding threads."""

    repo: Repository
    key: Key | None
    history: History
    as_of: datetime
    pool: Executor


async def load_table(conn: asyncpg.Connection, source: Source, table: LiveTable, image: TableImage) -> int:
    """Empty `table` and COPY the snapshot's rows into it, in one transaction; rows loaded.

    RestoreError when the count differs from the manifest's (a chunk lost or altered in a way
    its checksum did not show)."""
    async with conn.transaction():
        # FREEZE needs the table emptied in this transaction: rows go in frozen and visible, so
        # neither the index builds nor the API's first reads rewrite every page (hint bits).
        await conn.execute(f"TRUNCATE {table.qualified}")
        loaded = await copy_table(conn, source.repo, source.key, image, source.pool)
        if loaded != image.rows:
            raise RestoreError(f"table {image.name}: loaded {loaded} rows but snapshot "
                               f"{source.history.snapshot.id} records {image.rows}; "
                               "run 'vaxvault backup verify --deep'")
    return loaded


async def replay_table(conn: asyncpg.Connection, source: Source, table: LiveTable, loaded: int) -> TableAtT:
    """Bring `table` from the snapshot to T (tables with a primary key) and count its rows."""
    history = source.history
    changed = history.live_log or any(segments_in_window(history.segments, table.name, None, source.as_of))
    if not (table.primary_key and changed):
        return TableAtT(table.name, loaded, 0, loaded)  # as loaded, and the load's count was checked
    async with conn.transaction():
        replayed = await replay(conn, source.repo, source.key, history, table, table.qualified,
                                f"vv_replay_{table.name}", source.as_of)
        rows: int = await conn.fetchval(f"SELECT count(*) FROM {table.qualified}")
    return TableAtT(table.name, loaded, replayed, rows)


def build_jobs(source: Source, tables: Sequence[LiveTable], aside: SetAside,
               results: dict[str, TableAtT]) -> list[Job]:
    """Every job from empty tables to validated foreign keys; each table's replay job puts what
    it found in `results` (table name -> rows loaded, changes replayed, rows at T)."""
    images = {image.name: image for image in source.history.snapshot.tables}
    loaded: dict[str, int] = {}

    async def load(table: LiveTable, conn: asyncpg.Connection) -> None:
        loaded[table.name] = await load_table(conn, source, table, images[table.name])

    async def play(table: LiveTable, conn: asyncpg.Connection) -> None:
        results[table.name] = await replay_table(conn, source, table, loaded[table.name])

    owners: dict[str | None, list[ForeignKey]] = {}
    for foreign in aside.foreign_keys:
        owners.setdefault(foreign.table, []).append(foreign)
    validating = {owner: f"validate {keys[0].owner}" for owner, keys in owners.items()}
    jobs: list[Job] = []
    for table in tables:
        weight = images[table.name].rows * 4
        loading, replaying = f"load {table.name}", f"replay {table.name}"
        jobs.append(Job(loading, partial(load, table), weight=weight + 3))
        builds = aside.of(table.qualified)
        own = validating.get(table.qualified)
        after = {PRIMARY: (loading,), REFERENCED: (replaying,), REST: (FOREIGN_KEYS, *([own] if own else []))}
        for build in builds:
            jobs.append(Job(f"index {table.name}.{build.name}", partial(_build, build.statement),
                            after=after[build.stage], weight=weight + (2 if build.stage == PRIMARY else 0)))
        primary = (f"index {table.name}.{b.name}" for b in builds if b.stage == PRIMARY)
        jobs.append(Job(replaying, partial(play, table), after=(loading, *primary), weight=weight + 1))
    # The additions wait on any index build of the tables they touch, so no other index is
    # built before them.
    jobs.append(Job(FOREIGN_KEYS, partial(_add_foreign_keys, aside), after=tuple(
        job.name for job in jobs if not set(job.after) & {FOREIGN_KEYS, *validating.values()})))
    rows = {table.qualified: images[table.name].rows for table in tables}
    for owner, foreign_keys in owners.items():
        jobs.append(Job(validating[owner], partial(_validate, tuple(foreign_keys)), after=(FOREIGN_KEYS,),
                        weight=rows.get(owner or "", 0) * 4 + 4))
    return jobs


async def _build(statement: str, conn: asyncpg.Connection) -> None:
    await conn.execute(statement)


async def _add_foreign_keys(aside: SetAside, conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        for foreign in aside.foreign_keys:
            await conn.execute(foreign.add)


async def _validate(foreign_keys: tuple[ForeignKey, ...], conn: asyncpg.Connection) -> None:
    for foreign in foreign_keys:
        if foreign.validate is not None:
            await conn.execute(foreign.validate)
