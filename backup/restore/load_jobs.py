"""The work of a full restore between the schema and the last transaction, as a job graph that
several connections share (backup.restore.job_graph).

Per table: load (TRUNCATE and one COPY FREEZE in one transaction), its primary key's index, the
replay of the segments' changes up to T (upserts need that index; unique keys come after, so a
replayed swap of two values never trips them), then each other index, any of them on any
connection. Then, once every table is built, one short transaction attaches the keys to their
indexes and adds the foreign keys NOT VALID, and one job per referencing table validates them.
Every job commits on its own; the marker (backup.restore.unfinished) is what says the whole is
not a registry yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import asyncpg

from backup.restore.asof import LiveTable, replay
from backup.restore.bulk_load import ForeignKey, SetAside
from backup.restore.errors import RestoreError
from backup.restore.job_graph import Job
from backup.restore.source import History
from backup.restore.table_copy import copy_table
from backup.storage.codec import Key
from backup.storage.manifest import TableImage
from backup.storage.repository import Repository

KEYS = "keys attached, foreign keys added"


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
    async with conn.transaction():
        replayed = 0
        if table.primary_key:
            replayed = await replay(conn, source.repo, source.key, source.history, table, table.qualified,
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

    jobs: list[Job] = []
    for table in tables:
        weight = images[table.name].rows * 4
        loading, replaying = f"load {table.name}", f"replay {table.name}"
        jobs.append(Job(loading, partial(load, table), weight=weight + 3))
        builds = aside.of(table.qualified)
        primary = [f"index {table.name}.{b.name}" for b in builds if b.primary]
        for build in builds:
            jobs.append(Job(f"index {table.name}.{build.name}", partial(_build, build.statement),
                            after=(loading,) if build.primary else (replaying,),
                            weight=weight + (2 if build.primary else 0)))
        jobs.append(Job(replaying, partial(play, table), after=(loading, *primary),
                        weight=weight + 1))
    built = tuple(job.name for job in jobs)
    jobs.append(Job(KEYS, partial(_attach_keys, aside), after=built))
    owners: dict[str, list[ForeignKey]] = {}
    for foreign in aside.foreign_keys:
        owners.setdefault(foreign.owner, []).append(foreign)
    rows = {table.qualified: images[table.name].rows for table in tables}
    for owner, foreign_keys in owners.items():
        # One job per referencing table: VALIDATEs of one table wait on each other's lock anyway.
        jobs.append(Job(f"validate {owner}", partial(_validate, tuple(foreign_keys)), after=(KEYS,),
                        weight=rows.get(owner, 0)))
    return jobs


async def _build(statement: str, conn: asyncpg.Connection) -> None:
    await conn.execute(statement)


async def _attach_keys(aside: SetAside, conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        for statement in aside.attach:
            await conn.execute(statement)
        for foreign in aside.foreign_keys:
            await conn.execute(foreign.add)


async def _validate(foreign_keys: tuple[ForeignKey, ...], conn: asyncpg.Connection) -> None:
    for foreign in foreign_keys:
        if foreign.validate is not None:
            await conn.execute(foreign.validate)
