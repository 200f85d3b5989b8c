"""Point-in-time restore against a reference model (hypothesis stateful testing).

The model records every committed row version with its commit timestamp, from what the test
itself did, not from change capture. Random interleavings of inserts, updates, deletes,
key-changing updates, truncates, transactions held open across backup runs, full and incremental
runs and prune, with or without encryption; then `restore records` as of a T chosen anywhere
(between backups, between the last segment and now). Every row at T matching the predicate must
equal the model at T, except the conflicts, which must be listed exactly; every other row keeps its
live value; a second run restores nothing.

Bounded in the default run. VAXVAULT_SOAK_EXAMPLES=N runs N examples per backend with a printed
seed (VAXVAULT_SOAK_SEED=S to replay one).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import hypothesis.core
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.prune import prune
from backup.restore.errors import RestorePlanError
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, restore_records
from backup.runner import run_backup
from backup.stages import build_stages
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.reader import list_snapshots
from backup.storage.repository import Repository, open_repository
from tests.restore.old_format import as_format_2_0

pytestmark = pytest.mark.slow

SOAK = int(os.environ.get("VAXVAULT_SOAK_EXAMPLES", "0"))
KEYS = st.integers(1, 4)  # few keys: rows see several changes after T, hence conflicts
GROUPS = st.integers(0, 2)
VALUES = st.sampled_from(["a", "b", "c"])
T = TypeVar("T")
Image = tuple[int, str]  # (grp, v): the row's non-key columns


@dataclass(frozen=True)
class Version:
    committed_at: datetime
    seq: int                 # statement order, to order versions of one transaction
    image: Image | None      # None: the row was removed


class Model:
    """Committed row versions per key, and the live state."""

    def __init__(self) -> None:
        self.versions: dict[int, list[Version]] = {}
        self.live: dict[int, Image] = {}
        self.seq = 0

    def record(self, committed_at: datetime, effects: list[tuple[int, Image | None]]) -> None:
        for key, image in effects:
            self.seq += 1
            self.versions.setdefault(key, []).append(Version(committed_at, self.seq, image))
            if image is None:
                self.live.pop(key, None)
            else:
                self.live[key] = image

    def _ordered(self, key: int) -> list[Version]:
        return sorted(self.versions.get(key, []), key=lambda v: (v.committed_at, v.seq))

    def at(self, key: int, moment: datetime) -> Image | None:
        before = [v for v in self._ordered(key) if v.committed_at <= moment]
        return before[-1].image if before else None

    def first_after(self, key: int, moment: datetime) -> tuple[bool, Image | None]:
        after = [v for v in self._ordered(key) if v.committed_at > moment]
        return (True, after[0].image) if after else (False, None)

    def moments(self) -> list[datetime]:
        stamps = sorted({v.committed_at for vs in self.versions.values() for v in vs})
        return sorted({m for s in stamps for m in (s, s - timedelta(microseconds=1))})

    def expected(self, moment: datetime, group: int | None) -> tuple[dict[int, Image], set[int]]:
        """(key -> image to restore, keys that are conflicts) by the rule of decision.py."""
        restore: dict[int, Image] = {}
        conflicts = set()
        for key in self.versions:
            at_t = self.at(key, moment)
            if at_t is None or (group is not None and at_t[0] != group):
                continue
            live = self.live.get(key)
            if live == at_t:
                continue
            changed, damage = self.first_after(key, moment)
            if not changed or damage == live:
                restore[key] = at_t
            else:
                conflicts.add(key)
        return restore, conflicts


class RegistryMachine(RuleBasedStateMachine):
    """One small captured table, driven through real PostgreSQL and a real repository."""

    database_url = ""
    seen: dict[str, int] = {}  # what the examples exercised, printed at the end
    make_primary: Callable[[], str] = staticmethod(lambda: "")
    s3_endpoint_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.spool = Path(tempfile.mkdtemp(prefix="vv-model-spool-"))
        self.config = BackupConfig(database_url=self.database_url, spool_dir=self.spool,
                                   primary_url=self.make_primary(), s3_endpoint_url=self.s3_endpoint_url)
        self.held: tuple[asyncpg.Connection, str, list[tuple[int, Image | None]]] | None = None
        self.full_runs = 0
        self.checked = False
        self.conn: asyncpg.Connection = self.run(self._setup())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    async def _setup(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.database_url)
        await conn.execute("DROP SCHEMA IF EXISTS vaxvault_backup CASCADE; DROP TABLE IF EXISTS items; "
                           "CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, v text NOT NULL)")
        await install(conn, ("items",))
        return conn

    def teardown(self) -> None:
        """Every example ends with a check: a restore as of the middle of its history after the
        oldest snapshot kept (deterministic, so a failure here shrinks like any other)."""
        try:
            if self.held is not None:
                self.release(commit=True)
            if self.model.versions and not self.checked:
                repo = open_repository(self.config.primary_url or "", self.config.s3_endpoint_url)
                kept = [s.cut_at for s in list_snapshots(repo, self.config.key)]
                after = [m for m in self.model.moments() if kept and m >= min(kept)]
                if after:
                    self._check(repo, after[len(after) // 2], None)
        finally:
            if self.held is not None:
                self.run(self.held[0].close())
            self.run(self.conn.close())
            self.loop.close()
            shutil.rmtree(self.spool, ignore_errors=True)

    @initialize(rows=st.lists(st.tuples(KEYS, GROUPS, VALUES), min_size=1, max_size=5,
                                  unique_by=lambda r: r[0]),
                encrypted=st.booleans())
    def start(self, rows: list[tuple[int, int, str]], encrypted: bool) -> None:
        """Some rows and a first full backup, so that every step after can be a restore."""
        if encrypted:
            self.config = replace(self.config, key=Key(os.urandom(32)))
        for key, grp, v in rows:
            self.insert(key, grp, v)
        self.backup(True)

    # -- writes, each its own transaction, recorded with its commit timestamp ---------------
    async def _commit_time(self, conn: asyncpg.Connection, txid: str) -> datetime:
        moment: datetime = await conn.fetchval("SELECT pg_xact_commit_timestamp($1::text::xid8::xid)", txid)
        return moment

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]],
               effects: list[tuple[int, Image | None]]) -> None:
        async def go() -> None:
            async with self.conn.transaction():
                txid = await self.conn.fetchval("SELECT pg_current_xact_id()::text")
                for sql, args in statements:
                    await self.conn.execute(sql, *args)
            self.model.record(await self._commit_time(self.conn, txid), effects)
        self.run(go())

    def _free(self, key: int) -> bool:
        return self.held is None or key not in {k for k, _ in self.held[2]}

    @rule(key=KEYS, grp=GROUPS, v=VALUES)
    def insert(self, key: int, grp: int, v: str) -> None:
        if key not in self.model.live and self._free(key):
            self._write([("INSERT INTO items VALUES ($1, $2, $3)", (key, grp, v))], [(key, (grp, v))])

    @rule(key=KEYS, grp=GROUPS, v=VALUES)
    def update(self, key: int, grp: int, v: str) -> None:
        if key in self.model.live and self._free(key):
            self._write([("UPDATE items SET grp = $2, v = $3 WHERE id = $1", (key, grp, v))],
                        [(key, (grp, v))])

    @rule(key=KEYS, first=VALUES, then=VALUES)
    def damage_then_fix(self, key: int, first: str, then: str) -> None:
        """Two changes to one row in two transactions: with T before them, the second is a
        legitimate change after the damage, the shape of every conflict."""
        if key in self.model.live and self._free(key):
            grp = self.model.live[key][0]
            for v in (first, then):
                self._write([("UPDATE items SET v = $2 WHERE id = $1", (key, v))], [(key, (grp, v))])

    @rule(key=KEYS)
    def delete(self, key: int) -> None:
        if key in self.model.live and self._free(key):
            self._write([("DELETE FROM items WHERE id = $1", (key,))], [(key, None)])

    @rule(key=KEYS, new_key=KEYS)
    def change_key(self, key: int, new_key: int) -> None:
        if key in self.model.live and new_key not in self.model.live and self._free(key) \
                and self._free(new_key):
            image = self.model.live[key]
            self._write([("UPDATE items SET id = $2 WHERE id = $1", (key, new_key))],
                        [(key, None), (new_key, image)])

    @precondition(lambda self: self.held is None)
    @rule()
    def truncate(self) -> None:
        self._write([("TRUNCATE items", ())], [(key, None) for key in sorted(self.model.live)])

    # -- a transaction held open across backup runs -------------------------------------------
    @precondition(lambda self: self.held is None)
    @rule(key=KEYS, grp=GROUPS, v=VALUES)
    def hold(self, key: int, grp: int, v: str) -> None:
        async def go() -> tuple[asyncpg.Connection, str]:
            conn = await asyncpg.connect(self.database_url)
            await conn.execute("BEGIN")
            txid = await conn.fetchval("SELECT pg_current_xact_id()::text")
            if key in self.model.live:
                await conn.execute("UPDATE items SET grp = $2, v = $3 WHERE id = $1", key, grp, v)
            else:
                await conn.execute("INSERT INTO items VALUES ($1, $2, $3)", key, grp, v)
            return conn, txid
        conn, txid = self.run(go())
        self.held = (conn, txid, [(key, (grp, v))])

    @precondition(lambda self: self.held is not None)
    @rule(commit=st.booleans())
    def release(self, commit: bool) -> None:
        assert self.held is not None
        conn, txid, effects = self.held
        self.held = None

        async def go() -> None:
            await conn.execute("COMMIT" if commit else "ROLLBACK")
            if commit:
                self.model.record(await self._commit_time(conn, txid), effects)
            await conn.close()
        self.run(go())

    # -- backups and retention -----------------------------------------------------------------
    @rule(full=st.booleans(), old_format=st.booleans())
    def backup(self, full: bool, old_format: bool = False) -> None:
        """A run; with old_format, its segment is then made what vaxvault before format 2.1 wrote
        (JSON lines, no typed images), so restores read either kind and both in one history."""
        summary = self.run(run_backup(self.config, full=full))
        self.full_runs += summary.kind == "full"
        if old_format and summary.segment_id:
            for repo in (FileRepository(self.spool),
                         open_repository(self.config.primary_url or "", self.config.s3_endpoint_url)):
                self._saw("old-format segments", as_format_2_0(repo, self.config.key, {summary.segment_id}))

    @precondition(lambda self: self.full_runs >= 2)
    @rule()
    def prune_old(self) -> None:
        stages = build_stages(FileRepository(self.spool), self.config.primary_url, (),
                              self.config.s3_endpoint_url)
        now = datetime.now().astimezone()
        self.run(prune(self.database_url, stages, keep_full=1, keep_days=0, now=now))

    # -- the check -----------------------------------------------------------------------------
    @precondition(lambda self: self.held is None and self.full_runs >= 1 and self.model.versions)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        repo = open_repository(self.config.primary_url or "", self.config.s3_endpoint_url)
        # Mostly after the oldest snapshot kept (before it, a refusal is all there is to check).
        kept = [s.cut_at for s in list_snapshots(repo, self.config.key)]
        after = [m for m in self.model.moments() if kept and m >= min(kept)]
        anywhere = data.draw(st.integers(0, 9), label="anywhere") == 0
        moment = data.draw(st.sampled_from(self.model.moments() if anywhere or not after else after),
                           label="T")
        group = data.draw(st.none() | GROUPS, label="grp")
        self._check(repo, moment, group)

    def _check(self, repo: Repository, moment: datetime, group: int | None) -> None:
        self.checked = True
        request = RestoreRequest(table="items", as_of=moment,
                                 where=parse(f"grp = {group}") if group is not None else None)
        try:
            report = self.run(restore_records(self.database_url, repo, self.config.key, request))
        except RestorePlanError as exc:
            oldest = min(s.cut_at for s in list_snapshots(repo, self.config.key))
            assert "no snapshot at or before" in str(exc) and moment < oldest, str(exc)
            self._saw("refused (T before every snapshot)")
            return
        expected, conflicts = self.model.expected(moment, group)
        assert report.plan.warnings == ()
        assert {c.key["id"] for c in report.plan.conflicts} == conflicts
        assert report.plan.conflicts_total == len(conflicts)
        assert report.restored == len(expected)
        now = self.run(self._live())
        wanted = {**self.model.live, **expected}
        assert now == wanted
        self._saw("restores")
        self._saw("rows restored", len(expected))
        self._saw("conflicts listed", len(conflicts))
        self._saw("encrypted restores", self.config.key is not None)
        self._saw("restores from the live log after the last segment", report.plan.used_live_log)
        if expected:
            committed = self.run(self._last_commit())
            self.model.record(committed, sorted(expected.items()))
        again = self.run(restore_records(self.database_url, repo, self.config.key, request))
        assert again.restored == 0 and again.plan.conflicts_total == len(conflicts)

    def _saw(self, what: str, count: int = 1) -> None:
        self.seen[what] = self.seen.get(what, 0) + int(count)

    @precondition(lambda self: self.held is None and self.full_runs >= 1 and self.model.versions)
    @rule(data=st.data())
    def restore_again(self, data: st.DataObject) -> None:
        """The check, twice as likely as any other step."""
        self.restore(data)

    async def _live(self) -> dict[int, Image]:
        return {r["id"]: (r["grp"], r["v"]) for r in await self.conn.fetch("SELECT * FROM items")}

    async def _last_commit(self) -> datetime:
        moment: datetime = await self.conn.fetchval(
            "SELECT pg_xact_commit_timestamp(txid::xid) FROM vaxvault_backup.changes "
            "WHERE table_name = 'items' ORDER BY position DESC LIMIT 1")
        return moment


def _run(machine: type[RegistryMachine], monkeypatch: pytest.MonkeyPatch, examples: int) -> None:
    seed = int(os.environ.get("VAXVAULT_SOAK_SEED") or random.randrange(2**32))
    monkeypatch.setattr(hypothesis.core, "global_force_seed", seed)
    print(f"model-based restore: {examples} examples, seed {seed}")
    machine.seen = {}
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=24 if SOAK else 12, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), print_blob=True))
    print(f"model-based restore: seed {seed} done: {machine.seen}")
    assert machine.seen.get("restores", 0) > 0  # the examples must reach the check


def test_restore_matches_the_model_on_file(empty_database_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    class OnFile(RegistryMachine):
        pass

    OnFile.database_url = empty_database_url
    OnFile.make_primary = staticmethod(lambda: (tmp_path / uuid.uuid4().hex).as_uri())
    _run(OnFile, monkeypatch, SOAK or 6)


def test_restore_matches_the_model_on_s3(empty_database_url: str, s3_endpoint_url: str, s3_bucket: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    class OnS3(RegistryMachine):
        pass

    OnS3.database_url = empty_database_url
    OnS3.make_primary = staticmethod(lambda: f"s3://{s3_bucket}/{uuid.uuid4().hex}")
    OnS3.s3_endpoint_url = s3_endpoint_url
    _run(OnS3, monkeypatch, SOAK or 2)


def test_the_model_itself() -> None:
    """The reference rule on a hand-made history (so a wrong model cannot pass silently)."""
    model = Model()
    t0 = datetime(2026, 1, 1).astimezone()
    model.record(t0, [(1, (0, "a")), (2, (0, "a")), (3, (1, "a"))])
    moment = t0 + timedelta(seconds=1)
    model.record(t0 + timedelta(seconds=2), [(1, None), (2, (0, "damaged")), (3, None)])
    model.record(t0 + timedelta(seconds=3), [(2, (0, "fixed by hand")), (4, (0, "born after"))])
    assert model.expected(moment, None) == ({1: (0, "a"), 3: (1, "a")}, {2})
    assert model.expected(moment, 1) == ({3: (1, "a")}, set())
    assert replace(Version(t0, 1, None), seq=2).seq == 2
