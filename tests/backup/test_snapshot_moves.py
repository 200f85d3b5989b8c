"""Chunks are heap block ranges read in one exported snapshot: rows that UPDATEs move to other
blocks, DELETEs, VACUUM and INSERTs into freed space while the chunks are being copied must
leave the image exactly the table as of the snapshot point, every row once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.config import BackupConfig
from backup.runner import run_backup
from backup.storage import reader
from backup.storage.repository import open_repository
from tests.backup.conftest import install_capture

ROWS = 400

# One statement each: ("update", first id, step, grow pad by, move key), ("delete", first, step),
# ("insert", rows), ("vacuum",). Ids are picked as first, first+step, ... so a statement touches
# rows spread over many blocks (so over many chunks).
Op = tuple
OPS = st.one_of(
    st.tuples(st.just("update"), st.integers(1, 40), st.integers(2, 9), st.integers(0, 300), st.booleans()),
    st.tuples(st.just("delete"), st.integers(1, 40), st.integers(3, 11)),
    st.tuples(st.just("insert"), st.integers(1, 60)),
    st.tuples(st.just("vacuum")),
)


def _statement(op: Op, next_id: int) -> str:
    if op[0] == "update":
        _, first, step, grow, move = op
        key = ", k = k + 100000" if move else ""  # an indexed column: never a HOT update
        return (f"UPDATE moved SET v = v + 1, pad = pad || repeat('u', {grow}){key} "
                f"WHERE id >= {first} AND (id - {first}) % {step} = 0")
    if op[0] == "delete":
        _, first, step = op
        return f"DELETE FROM moved WHERE id >= {first} AND (id - {first}) % {step} = 0"
    if op[0] == "insert":
        return (f"INSERT INTO moved SELECT g, g, 0, repeat('i', 150 + g % 200) "
                f"FROM generate_series({next_id}, {next_id + op[1] - 1}) g")
    return "VACUUM moved"


class _Writer:
    """A connection on its own thread and event loop: a statement sent from the run's progress
    callback ends before the callback returns, so it runs after that chunk is stored and before
    any later one is recorded (the workers' backends go on streaming meanwhile)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn: asyncpg.Connection = self.call(asyncpg.connect(url))
        self.next_id = 100_000

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def apply(self, op: Op) -> None:
        self.call(self.conn.execute(_statement(op, self.next_id)))
        if op[0] == "insert":
            self.next_id += op[1]

    def close(self) -> None:
        self.call(self.conn.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def writer(database_url: str) -> Iterator[_Writer]:
    asyncio.run(install_capture(database_url))
    writer = _Writer(database_url)
    writer.call(writer.conn.execute(
        "CREATE TABLE moved (id bigint PRIMARY KEY, v int NOT NULL, k int NOT NULL, pad text NOT NULL); "
        "CREATE INDEX moved_k ON moved (k)"))
    yield writer
    writer.close()


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(before=st.lists(OPS, max_size=5), during=st.lists(OPS, min_size=1, max_size=6),
       workers=st.integers(1, 3))
def test_rows_moved_deleted_or_inserted_while_chunks_are_copied_are_in_the_image_once(
        writer: _Writer, database_url: str, tmp_path: Path, before: list[Op], during: list[Op],
        workers: int) -> None:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=20, workers=workers)
    writer.call(writer.conn.execute(
        f"TRUNCATE moved; INSERT INTO moved SELECT g, 0, g, repeat('p', 150 + g * 7 % 200) "
        f"FROM generate_series(1, {ROWS}) g"))
    writer.call(writer.conn.execute("VACUUM ANALYZE moved"))
    for op in before:  # shapes the heap: freed space, moved rows, new rows in old blocks
        writer.apply(op)
    expected = sorted(tuple(r) for r in writer.call(writer.conn.fetch("SELECT id, v, k, pad FROM moved")))
    left = list(during)

    def progress(rows: int, size: int) -> None:
        # one statement after each chunk stored, once the copy of `moved` has begun
        if left and any(config.spool_dir.glob("snapshots/*/tables/moved/*")):
            writer.apply(left.pop(0))

    summary = asyncio.run(run_backup(config, full=True, progress=progress))
    assert not left, "the run ended before every statement ran during it"
    repo = open_repository(config.primary_url or "")
    [snapshot] = [s for s in reader.list_snapshots(repo) if s.id == summary.snapshot_id]
    table = snapshot.table("moved")
    image = sorted((int(r["id"] or 0), int(r["v"] or 0), int(r["k"] or 0), r["pad"])
                   for chunk in table.chunks for r in reader.iter_chunk_rows(repo, table, chunk, None))
    assert image == expected and table.rows == len(expected)
