"""What loading on several connections adds to `restore full`: a failure on one connection stops
the others and clears the target, a crash leaves a marked target that `db migrate` refuses and
the next `restore full` clears, and the job graph and the clearing hold their own contracts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.db.migrate import is_current
from api.db.seed import seed
from api.domain.disaster_recovery import restore_registry
from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.restore import unfinished
from backup.restore.errors import RestoreError
from backup.restore.full import plan_full
from backup.restore.job_graph import Job, run_jobs
from backup.runner import run_backup
from backup.storage.file import FileRepository
from backup.storage.repository import ObjectInfo
from tests.processes import kill_when

pytestmark = pytest.mark.slow

VAXVAULT = Path(sys.executable).parent / "vaxvault"
ROWS = "SELECT md5(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text)) FROM {table} t"
# Everything a database holds besides rows, to compare a cleared target with its state before.
CATALOG = """
SELECT 'class ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
UNION ALL SELECT 'proc ' || p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL SELECT 'type ' || t.oid::regtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL SELECT 'schema ' || nspname || ' ' || coalesce(nspacl, acldefault('n', nspowner))::text
  FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema'
"""


async def _fetchval(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _source(database_url: str, tmp_path: Path, *statements: str) -> FileRepository:
    """A seeded registry, changed by `statements`, with capture and one full snapshot."""
    conn = await asyncpg.connect(database_url)
    try:
        await seed(conn, 60, seed_value=5)
        for statement in statements:
            await conn.execute(statement)
        await install(conn)
    finally:
        await conn.close()
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=20)
    await run_backup(config, full=True)
    return FileRepository(tmp_path / "primary")


class GatedRepository:
    """The file repository, except that reads of the named tables' chunks wait for their gate:
    a test holds a restore at a known point of its load, on the real storage code path."""

    def __init__(self, inner: FileRepository, tables: tuple[str, ...]) -> None:
        self.inner, self.url = inner, inner.url
        self.asked = {t: threading.Event() for t in tables}
        self.gates = {t: threading.Event() for t in tables}

    def get(self, key: str) -> bytes:
        for table, gate in self.gates.items():
            if f"/tables/{table}/" in key:
                self.asked[table].set()
                gate.wait(timeout=120)  # a bound on a hang, not a measurement
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.inner.put_file(key, path)

    def stream(self, key: str) -> Iterator[bytes]:
        return self.inner.stream(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        return self.inner.list(prefix, start_after)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def clean_incomplete(self) -> int:
        return self.inner.clean_incomplete()


async def test_a_failing_loader_stops_the_other_and_the_target_is_as_before(
        database_url: str, empty_database_url: str, tmp_path: Path) -> None:
    # A row the code's schema refuses (the source lost its CHECK): recipients' COPY fails.
    stored = await _source(database_url, tmp_path,
                           "ALTER TABLE recipients DROP CONSTRAINT recipients_phone_check",
                           "UPDATE recipients SET phone = 'not a phone' "
                           "WHERE id = (SELECT min(id) FROM recipients)")
    before = await _catalog(empty_database_url)
    repo = GatedRepository(stored, ("doses", "recipients"))
    restore = asyncio.create_task(restore_registry(empty_database_url, repo, None,
                                                   plan_full(repo, None, None), "test", connections=2))
    try:
        # Both loads are under way (each connection in its table's COPY) before either may go on.
        async with asyncio.timeout(60):  # a bound on a hang, not a measurement
            while not all(asked.is_set() for asked in repo.asked.values()):
                assert not restore.done(), restore.exception()
                await asyncio.sleep(0.05)
        repo.gates["recipients"].set()  # only recipients goes on, and fails
        with pytest.raises(RestoreError, match=r"nothing was kept.*recipients_phone_check"):
            async with asyncio.timeout(60):
                await restore
        # The doses load never got its chunk: it was stopped, not waited for.
        assert not repo.gates["doses"].is_set()
        assert await _fetchval(empty_database_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                               "datname = current_database() AND pid <> pg_backend_pid()") == 0
        assert await _catalog(empty_database_url) == before
    finally:
        repo.gates["doses"].set()
        restore.cancel()


async def test_a_crash_midway_leaves_a_marked_target_that_the_next_restore_clears(
        database_url: str, empty_database_url: str, tmp_path: Path) -> None:
    stored = await _source(database_url, tmp_path)
    snapshot = plan_full(stored, None, None).history.snapshot
    chunk = snapshot.table("doses").chunks[-1].object.key
    kept = stored.get(chunk)
    # The last doses chunk is a pipe nobody writes: the restore blocks there, mid-COPY.
    (tmp_path / "primary" / chunk).unlink()
    os.mkfifo(tmp_path / "primary" / chunk)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VAXVAULT_") or k.startswith("VAXVAULT_TEST")}
    env.update(VAXVAULT_BACKUP_URL=stored.url, VAXVAULT_STATE_DIR=str(tmp_path / "state"))
    command = [str(VAXVAULT), "restore", "full", "--as-of", "latest", "--target-url", empty_database_url]

    async def loading_doses() -> bool:
        return bool(await _fetchval(empty_database_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                                    "datname = current_database() AND query LIKE 'COPY %doses%'"))

    assert await kill_when(command, env, loading_doses, "loading doses") == -signal.SIGKILL
    async with asyncio.timeout(60):  # the killed client's sessions end on their own
        while await _fetchval(empty_database_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                              "datname = current_database() AND pid <> pg_backend_pid()"):
            await asyncio.sleep(0.05)
    (tmp_path / "primary" / chunk).unlink()
    stored.put(chunk, kept)

    # The state an operator finds: marked, not a registry, and said so.
    conn = await asyncpg.connect(empty_database_url)
    try:
        found = await unfinished.found(conn)
        assert found is not None and found.snapshot_id == snapshot.id
        assert not await is_current(conn)  # /readyz answers "migrations pending"
    finally:
        await conn.close()
    env["VAXVAULT_DATABASE_URL"] = empty_database_url
    migrated = subprocess.run([str(VAXVAULT), "db", "migrate"], env=env, capture_output=True, text=True,
                              check=False)
    assert migrated.returncode == 1 and "unfinished 'restore full'" in migrated.stderr
    assert "run the same 'vaxvault restore full' again" in migrated.stderr

    # What the operator does: the same command again.
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"cleared an unfinished 'restore full' (snapshot {snapshot.id}" in rerun.stdout
    for table in ("recipients", "doses", "centers"):
        query = ROWS.format(table=table)
        assert await _fetchval(empty_database_url, query) == await _fetchval(database_url, query)
    assert await _fetchval(empty_database_url, f"SELECT to_regclass('{unfinished.MARKER}')") is None


async def _catalog(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {row[0] for row in await conn.fetch(CATALOG)}
    finally:
        await conn.close()


async def test_clearing_drops_what_came_after_the_mark_and_keeps_what_was_before(
        empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute("""
            DO $$ BEGIN CREATE ROLE vvt_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
            CREATE SCHEMA kept; CREATE FUNCTION kept_f() RETURNS int LANGUAGE sql AS 'SELECT 1';
            CREATE TYPE kept_t AS ENUM ('a'); CREATE TABLE kept.t (id int PRIMARY KEY)""")
        before = await _catalog(empty_database_url)
        async with conn.transaction():
            await unfinished.mark(conn, "s1", await conn.fetchval("SELECT now()"))
            await conn.execute("""
                CREATE SCHEMA made; CREATE TABLE made.t (id int); CREATE TYPE made_t AS (a int);
                CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k kept_t);
                CREATE SEQUENCE s; CREATE VIEW v AS SELECT id FROM t;
                CREATE DOMAIN d AS int CHECK (VALUE > 0);
                CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
                CREATE AGGREGATE array_agg2(anycompatiblearray)
                    (SFUNC = array_cat, STYPE = anycompatiblearray);
                GRANT USAGE ON SCHEMA public TO vvt_reader; GRANT USAGE ON SCHEMA kept TO vvt_reader""")
        assert await unfinished.found(conn) is not None
        assert await unfinished.clear(conn) > 0
        assert await _catalog(empty_database_url) == before
        assert await unfinished.found(conn) is None
        assert await unfinished.clear(conn) == 0  # nothing marked: nothing touched
        assert await _catalog(empty_database_url) == before
    finally:
        await conn.close()


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[tuple[int, ...]], int | None]:
    """A random DAG (job i waits on some jobs before it) and maybe one job that fails."""
    size = draw(st.integers(1, 9))
    after = [tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
             for i in range(size)]
    return after, draw(st.none() | st.integers(0, size - 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graphs(), st.integers(1, 3))
def test_jobs_run_once_after_what_they_wait_on_and_a_failure_stops_the_rest(
        database_url: str, graph: tuple[list[tuple[int, ...]], int | None], workers: int) -> None:
    after, failing = graph
    events: list[tuple[str, int]] = []

    async def job(index: int, conn: asyncpg.Connection) -> int:
        events.append(("start", index))
        await conn.execute("SELECT pg_sleep(0.001 * $1)", index % 3)
        if index == failing:
            events.append(("fail", index))
            raise RuntimeError(f"job {index} failed")
        events.append(("end", index))
        return index

    async def run() -> None:
        conns = [await asyncpg.connect(database_url) for _ in range(workers)]
        try:
            jobs = [Job(str(i), partial(job, i), tuple(str(d) for d in deps), weight=i % 4)
                    for i, deps in enumerate(after)]
            if failing is None:
                ran = await run_jobs(conns, jobs)
                assert ran.values == {str(i): i for i in range(len(after))}
            else:
                with pytest.raises(RuntimeError, match=f"job {failing} failed"):
                    await run_jobs(conns, jobs)
            for conn in conns:  # every connection usable again, nothing left running on it
                assert await conn.fetchval("SELECT 1") == 1 and not conn.is_in_transaction()
        finally:
            for conn in conns:
                await conn.close()

    asyncio.run(run())
    started = [i for kind, i in events if kind == "start"]
    ended = [i for kind, i in events if kind == "end"]
    assert len(started) == len(set(started))  # once each
    for position, (kind, index) in enumerate(events):
        if kind == "start":  # everything it waits on had ended before
            assert set(after[index]) <= {i for k, i in events[:position] if k == "end"}
    if failing is None:
        assert sorted(ended) == list(range(len(after)))
    else:
        failed_at = events.index(("fail", failing))
        # Nothing starts once a job has failed; what was running then was stopped or ended.
        assert not [i for kind, i in events[failed_at:] if kind == "start"]
        assert failing not in ended


def test_a_job_that_ends_as_another_fails_starts_nothing_more(database_url: str) -> None:
    """The race the model above found under load: the failing job and a job on the other
    connection wake in the same turn of the loop; the second must not start a third before the
    failure cancels the workers."""
    events: list[str] = []

    async def run() -> None:
        both_done = asyncio.Event()

        async def fails(conn: asyncpg.Connection) -> None:
            events.append("start fails")
            await both_done.wait()
            raise RuntimeError("fails failed")

        async def ends(conn: asyncpg.Connection) -> None:
            events.append("start ends")
            both_done.set()  # wakes `fails` first (it waited first), then this job returns
            await asyncio.sleep(0)

        async def third(conn: asyncpg.Connection) -> None:
            events.append("start third")

        conns = [await asyncpg.connect(database_url) for _ in range(2)]
        try:
            jobs = [Job("fails", fails, weight=3), Job("ends", ends, weight=2),
                    Job("third", third, weight=1)]
            with pytest.raises(RuntimeError, match="fails failed"):
                await run_jobs(conns, jobs)
        finally:
            for conn in conns:
                await conn.close()

    asyncio.run(run())
    assert events == ["start fails", "start ends"]


def test_a_graph_that_could_never_finish_is_refused_before_anything_runs() -> None:
    async def never(conn: asyncpg.Connection) -> None:
        raise AssertionError("must not run")

    for jobs in ([Job("a", never, ("b",)), Job("b", never, ("a",))],
                 [Job("a", never, ("missing",))], [Job("a", never), Job("a", never)]):
        with pytest.raises(ValueError, match=r"cycle|unknown|duplicate"):
            asyncio.run(run_jobs([], jobs))
