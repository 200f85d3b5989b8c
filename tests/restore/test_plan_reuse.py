"""A dry run's saved plan, reused by the apply only while it is still valid (backup/restore/plans.py).

Differential: random histories, a dry run, then random changes before the apply (to the restored
table and to another captured table, committed or rolled back, a transaction open across the dry
run that commits or rolls back later, an incremental backup). The apply that may reuse the plan
must leave exactly the rows, and report exactly the counts, that a fresh apply without reuse
gives in the same state (run first in a transaction that is rolled back), and it must refuse the
plan whenever a change to the table committed that the dry run did not see. Plus: a plan whose
rows or record were edited, sealed without the repository key, made in another database, expired
or from a snapshot ahead of the server is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.restore import plans
from backup.restore.predicate import parse
from backup.restore.records import (
    ConflictPolicy,
    RestoreReport,
    RestoreRequest,
    dry_run,
    restore_in_transaction,
    restore_records,
)
from backup.restore.source import open_history
from backup.runner import run_backup
from backup.storage.codec import Key
from backup.storage.repository import open_repository
from tests.restore.scenario import database_now

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("VAXVAULT_SOAK_EXAMPLES", "0")) or 20
KEYS = st.integers(1, 6)
VALUES = st.sampled_from(["a", "b", "c"])

# After the dry run: ("items", key, value, commit), ("other", commit), ("release", commit), ("backup",)
EVENTS = st.one_of(
    st.tuples(st.just("items"), KEYS, VALUES, st.booleans()),
    st.tuples(st.just("other"), st.booleans()),
    st.tuples(st.just("release"), st.booleans()),
    st.tuples(st.just("backup")),
)


@dataclass
class History:
    rows: dict[int, tuple[int, str]]
    before_t: list[tuple[int, str | None]]   # changes after the full backup, before T
    damage: list[tuple[int, str | None]]     # after T: None deletes
    backup_before_dry_run: bool
    held: str | None                          # a transaction open across the dry run: 'items' | 'other'
    held_key: int
    group: int | None
    overwrite: bool
    events: list[tuple[Any, ...]]


HISTORIES = st.builds(
    History,
    rows=st.dictionaries(KEYS, st.tuples(st.integers(0, 1), VALUES), min_size=1, max_size=6),
    before_t=st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=3),
    damage=st.lists(st.tuples(KEYS, st.none() | st.just("x")), min_size=1, max_size=4),
    backup_before_dry_run=st.booleans(),
    held=st.none() | st.sampled_from(["items", "other"]),
    held_key=KEYS,
    group=st.none() | st.integers(0, 1),
    overwrite=st.booleans(),
    events=st.lists(EVENTS, max_size=4),
)


class Registry:
    """One database with captured tables `items` (restored) and `other` (not), and a repository."""

    def __init__(self, database_url: str, key: Key | None = None) -> None:
        self.database_url = database_url
        self.spool = Path(tempfile.mkdtemp(prefix="vv-plan-spool-"))
        self.primary = Path(tempfile.mkdtemp(prefix="vv-plan-repo-"))
        self.config = BackupConfig(database_url=database_url, spool_dir=self.spool,
                                   primary_url=self.primary.as_uri(), key=key)
        self.repo = open_repository(self.config.primary_url or "")

    def close(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)
        shutil.rmtree(self.primary, ignore_errors=True)

    async def setup(self, rows: dict[int, tuple[int, str]]) -> None:
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(
                "DROP SCHEMA IF EXISTS vaxvault_backup CASCADE; DROP TABLE IF EXISTS items, other; "
                "CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, v text NOT NULL); "
                "CREATE TABLE other (id serial PRIMARY KEY, note text)")
            await install(conn, ("items", "other"))
            for key, (grp, v) in rows.items():
                await conn.execute("INSERT INTO items VALUES ($1, $2, $3)", key, grp, v)
        finally:
            await conn.close()
        await run_backup(self.config, full=True)

    async def write(self, conn: asyncpg.Connection, key: int, value: str | None) -> None:
        """Set row `key`'s v (insert it in group 0 when missing), or delete it (value None)."""
        if value is None:
            await conn.execute("DELETE FROM items WHERE id = $1", key)
        else:
            await conn.execute("INSERT INTO items VALUES ($1, 0, $2) ON CONFLICT (id) DO UPDATE SET v = $2",
                               key, value)

    async def items(self) -> list[tuple[int, int, str]]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return [tuple(r) for r in await conn.fetch("SELECT id, grp, v FROM items ORDER BY id")]
        finally:
            await conn.close()

    async def fresh(self, request: RestoreRequest) -> tuple[list[tuple[int, int, str]], RestoreReport]:
        """The apply without reuse in the current state, rolled back: its rows and report."""
        conn = await asyncpg.connect(self.database_url)
        try:
            transaction = conn.transaction(isolation="repeatable_read")
            await transaction.start()
            try:
                history = await open_history(conn, self.repo, self.config.key, request.as_of, True)
                await conn.execute("SET LOCAL TimeZone = 'UTC'")
                report = await restore_in_transaction(conn, self.repo, self.config.key, history,
                                                      replace(request, reuse_plan=False), True)
                rows = [tuple(r) for r in await conn.fetch("SELECT id, grp, v FROM items ORDER BY id")]
            finally:
                await transaction.rollback()
        finally:
            await conn.close()
        return rows, report


async def _play(registry: Registry, history: History) -> tuple[str, bool, bool]:
    """The history, the dry run, the events; returns (reuse status, must refuse, may refuse)."""
    await registry.setup(history.rows)
    conn = await asyncpg.connect(registry.database_url)
    held: asyncpg.Connection | None = None
    try:
        for key, value in history.before_t:
            await registry.write(conn, key, value)
        as_of = await database_now(registry.database_url)
        async with conn.transaction():
            for key, value in history.damage:
                await registry.write(conn, key, value)
        if history.backup_before_dry_run:
            await run_backup(registry.config, full=False)
        if history.held is not None:
            held = await asyncpg.connect(registry.database_url)
            await held.execute("BEGIN")
            if history.held == "items":
                await registry.write(held, history.held_key, "held")
            else:
                await held.execute("INSERT INTO other (note) VALUES ('held')")
            # A later transaction commits before the dry run: the held one's changes then sit below
            # positions (and xids) the dry run saw, and its xid is in the dry run's in-progress list.
            await conn.execute("INSERT INTO other (note) VALUES ('after the held one')")
        request = RestoreRequest(
            table="items", as_of=as_of,
            where=parse(f"grp = {history.group}") if history.group is not None else None,
            on_conflict=ConflictPolicy.OVERWRITE if history.overwrite else ConflictPolicy.SKIP)
        dry = await dry_run(registry.database_url, registry.repo, registry.config.key, request)
        assert dry.reuse is not None and dry.reuse.status == "saved", dry.reuse
        must_refuse = may_refuse = False
        events = list(history.events)
        if held is not None and not any(e[0] == "release" for e in events):
            events.append(("release", True))
        for event in events:
            if event[0] == "items":
                _, key, value, commit = event
                if held is not None and history.held == "items" and key == history.held_key:
                    continue  # would wait for the held transaction's row lock
                transaction = conn.transaction()
                await transaction.start()
                await registry.write(conn, key, value)
                await (transaction.commit() if commit else transaction.rollback())
                must_refuse |= commit
            elif event[0] == "other":
                transaction = conn.transaction()
                await transaction.start()
                await conn.execute("INSERT INTO other (note) VALUES ('later')")
                await (transaction.commit() if event[1] else transaction.rollback())
            elif event[0] == "release" and held is not None:
                await held.execute("COMMIT" if event[1] else "ROLLBACK")
                must_refuse |= event[1] and history.held == "items"
                await held.close()
                held = None
            elif event[0] == "backup":
                await run_backup(registry.config, full=False)
                may_refuse = True
        expected_rows, expected = await registry.fresh(request)
        report = await restore_records(registry.database_url, registry.repo, registry.config.key, request)
        assert await registry.items() == expected_rows
        assert (report.reinserted, report.written_back, report.overwritten) == \
            (expected.reinserted, expected.written_back, expected.overwritten)
        assert report.plan.counts == expected.plan.counts
        assert report.plan.conflicts == expected.plan.conflicts
        assert report.plan.sample == expected.plan.sample
        assert report.reuse is not None
        return report.reuse.status, must_refuse, may_refuse
    finally:
        if held is not None:
            await held.close()
        await conn.close()


def test_reused_plan_applies_what_a_fresh_plan_applies(empty_database_url: str) -> None:
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(history=HISTORIES)
    def applies_the_same(history: History) -> None:
        registry = Registry(empty_database_url)
        try:
            status, must_refuse, may_refuse = asyncio.run(_play(registry, history))
        finally:
            registry.close()
        seen[status] = seen.get(status, 0) + 1
        if must_refuse:
            assert status == "not reused"
        elif not may_refuse:
            assert status == "reused"

    applies_the_same()
    print(f"plan reuse: {seen}")
    assert seen.get("reused", 0) > 0 and seen.get("not reused", 0) > 0, seen  # both outcomes exercised


# -- the transaction open across the dry run, by hand -------------------------------------------

async def test_a_change_committed_later_with_an_earlier_position_is_seen(empty_database_url: str) -> None:
    registry = Registry(empty_database_url)
    try:
        await registry.setup({1: (0, "a"), 2: (0, "a"), 3: (1, "a")})
        as_of = await database_now(empty_database_url)
        conn = await asyncpg.connect(empty_database_url)
        held = await asyncpg.connect(empty_database_url)
        try:
            await conn.execute("DELETE FROM items WHERE id = 1")
            await held.execute("BEGIN")
            await held.execute("UPDATE items SET v = 'late' WHERE id = 3")  # outside the predicate
            await conn.execute("UPDATE items SET v = 'later' WHERE id = 2")  # a higher position, committed
            request = RestoreRequest(table="items", as_of=as_of, where=parse("grp = 0"))
            dry = await dry_run(empty_database_url, registry.repo, None, request)
            assert dry.reuse is not None and dry.reuse.status == "saved"
            await held.execute("COMMIT")
            positions = await conn.fetch("SELECT position, new->>'v' AS v FROM vaxvault_backup.changes "
                                         "WHERE table_name = 'items' ORDER BY position")
            # the held change sits below a position the dry run saw: comparing positions misses it
            assert [p["v"] for p in positions][-2:] == ["late", "later"]
        finally:
            await held.close()
            await conn.close()
        report = await restore_records(empty_database_url, registry.repo, None, request)
        assert report.reuse is not None and report.reuse.status == "not reused"
        assert "changed since the dry run (1 captured change(s)" in report.reuse.reason
        assert (report.reinserted, report.written_back) == (1, 1)
    finally:
        registry.close()


# -- plans that must not be trusted ---------------------------------------------------------------

async def _dry_run_then(registry: Registry, edit: str, *args: Any) -> RestoreReport:
    """An incident, a dry run, `edit` (SQL on the plan's record or rows, {rows} names its row
    table), then the apply."""
    await registry.setup({1: (0, "a"), 2: (0, "b"), 3: (1, "c")})
    as_of = await database_now(registry.database_url)
    conn = await asyncpg.connect(registry.database_url)
    try:
        await conn.execute("DELETE FROM items WHERE id = 1; UPDATE items SET v = 'x' WHERE id = 2")
        request = RestoreRequest(table="items", as_of=as_of)
        dry = await dry_run(registry.database_url, registry.repo, registry.config.key, request)
        assert dry.reuse is not None and dry.reuse.plan_id is not None
        rows = f'vaxvault_backup."plan_{dry.reuse.plan_id}"'
        if edit:
            await conn.execute(edit.format(rows=rows), *args)
        report = await restore_records(registry.database_url, registry.repo, registry.config.key, request)
        assert await registry.items() == [(1, 0, "a"), (2, 0, "b"), (3, 1, "c")]  # restored all the same
        assert await conn.fetchval("SELECT count(*) FROM vaxvault_backup.restore_plans") == 0
        return report
    finally:
        await conn.close()


async def _reseal(database_url: str, key: Key | None, **changes: Any) -> None:
    """Rewrite the one saved plan's record with `changes` (parts as a dict) and a digest made as
    plans.save makes it with `key`."""
    conn = await asyncpg.connect(database_url)
    try:
        row = dict(await conn.fetchrow("SELECT * FROM vaxvault_backup.restore_plans"))
        parts = json.loads(row["parts"])
        for name, value in changes.items():
            if name == "database":
                parts["database"] = {**parts["database"], **value}
            else:
                row[name] = value
        row["fingerprint"] = plans.fingerprint(parts)
        row["digest"] = plans._digest(key, [row["id"], row["fingerprint"], row["made_in"],
                                            row["made_at"].isoformat(), row["expires_at"].isoformat(),
                                            json.loads(row["plan"]), row["rows_digest"]])
        await conn.execute("UPDATE vaxvault_backup.restore_plans SET parts = $1::jsonb, fingerprint = $2, "
                           "made_in = $3, expires_at = $4, digest = $5", json.dumps(parts),
                           row["fingerprint"], row["made_in"], row["expires_at"], row["digest"])
    finally:
        await conn.close()


async def test_an_untouched_plan_is_reused(empty_database_url: str) -> None:
    registry = Registry(empty_database_url, Key(os.urandom(32)))
    try:
        report = await _dry_run_then(registry, "")
        assert report.reuse is not None and report.reuse.status == "reused", report.reuse
        assert report.restored == 2 and set(report.timings) >= {"rebuild_as_of", "apply"}
    finally:
        registry.close()


@pytest.mark.parametrize(("edit", "reason"), [
    ("UPDATE {rows} SET v = 'evil' WHERE id = 2", "rows do not match its digest"),
    ("UPDATE vaxvault_backup.restore_plans SET plan = jsonb_set(plan, '{{matched}}', '99')",
     "digest does not match its content"),
    ("DELETE FROM {rows}", "rows do not match its digest"),
])
async def test_an_edited_plan_is_refused(empty_database_url: str, edit: str, reason: str) -> None:
    registry = Registry(empty_database_url, Key(os.urandom(32)))
    try:
        report = await _dry_run_then(registry, edit)
        assert report.reuse is not None and report.reuse.status == "not reused"
        assert reason in report.reuse.reason and report.reuse.reason.startswith("refused")
    finally:
        registry.close()


async def _dry_run_of(registry: Registry, rows: dict[int, tuple[int, str]], damage: str,
                     where: str | None = None) -> RestoreRequest:
    """Rows, a full backup, T, the `damage` (SQL), a dry run as of T: its request."""
    await registry.setup(rows)
    as_of = await database_now(registry.database_url)
    conn = await asyncpg.connect(registry.database_url)
    try:
        await conn.execute(damage)
    finally:
        await conn.close()
    request = RestoreRequest(table="items", as_of=as_of, where=parse(where) if where else None)
    await dry_run(registry.database_url, registry.repo, registry.config.key, request)
    return request


async def test_a_plan_sealed_without_the_key_is_refused(empty_database_url: str) -> None:
    key = Key(os.urandom(32))
    registry = Registry(empty_database_url, key)
    try:
        request = await _dry_run_of(registry, {1: (0, "a")}, "DELETE FROM items")
        await _reseal(empty_database_url, None)  # a forger without the key: plain SHA-256
        report = await restore_records(empty_database_url, registry.repo, key, request)
        assert report.reuse is not None and "digest does not match" in report.reuse.reason
        assert report.reinserted == 1
    finally:
        registry.close()


@pytest.mark.parametrize(("change", "reason"), [
    ({"database": {"name": "elsewhere"}}, "made in another database"),
    ({"database": {"system": "1"}}, "made in another database"),
    ({"made_in": "999999999:999999999:"}, "snapshot is ahead of this database"),
    ({"expires_at": datetime(2020, 1, 1).astimezone()}, "no dry run of items saved a plan"),
])
async def test_a_foreign_or_stale_plan_is_refused(empty_database_url: str, change: dict[str, Any],
                                                 reason: str) -> None:
    key = Key(os.urandom(32))
    registry = Registry(empty_database_url, key)
    try:
        request = await _dry_run_of(registry, {1: (0, "a"), 2: (1, "b")}, "UPDATE items SET v = 'x'")
        await _reseal(empty_database_url, key, **change)  # sealed with the key: only its content is wrong
        report = await restore_records(empty_database_url, registry.repo, key, request)
        assert report.reuse is not None and report.reuse.status == "not reused"
        assert reason in report.reuse.reason, report.reuse.reason
        assert report.written_back == 2
        assert await registry.items() == [(1, 0, "a"), (2, 1, "b")]
    finally:
        registry.close()


async def test_other_options_or_replan_plan_afresh(empty_database_url: str) -> None:
    registry = Registry(empty_database_url)
    try:
        request = await _dry_run_of(registry, {1: (0, "a"), 2: (1, "b")}, "DELETE FROM items", "grp = 0")
        other = await restore_records(empty_database_url, registry.repo, None,
                                      replace(request, where=parse("grp = 1")))
        assert other.reuse is not None and "with other options (where)" in other.reuse.reason
        await dry_run(empty_database_url, registry.repo, None, request)
        asked = await restore_records(empty_database_url, registry.repo, None,
                                      replace(request, reuse_plan=False))
        assert asked.reuse is not None and asked.reuse.reason == "asked to plan afresh"
        assert await registry.items() == [(1, 0, "a"), (2, 1, "b")]
        # the unused plan stays until it expires or a later one pushes it out
        conn = await asyncpg.connect(empty_database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM vaxvault_backup.restore_plans") == 1
        finally:
            await conn.close()
    finally:
        registry.close()



async def test_a_plan_made_for_other_options_is_left_for_its_own_apply(empty_database_url: str) -> None:
    """An apply with other options plans afresh and leaves the dry run's plan alone: the apply
    the dry run was made for still reuses it."""
    registry = Registry(empty_database_url)
    try:
        request = await _dry_run_of(registry, {1: (0, "a"), 2: (1, "b")}, "DELETE FROM items", "grp = 0")
        other = await restore_records(empty_database_url, registry.repo, None,
                                      replace(request, where=parse("grp = 2")))
        assert other.reuse is not None and "with other options (where)" in other.reuse.reason
        assert other.restored == 0
        own = await restore_records(empty_database_url, registry.repo, None, request)
        assert own.reuse is not None and own.reuse.status == "reused", own.reuse
        assert await registry.items() == [(1, 0, "a")]
    finally:
        registry.close()


@pytest.mark.parametrize("ddl", [
    "ALTER TABLE items ADD CONSTRAINT v_given CHECK (v <> '') NOT VALID",
    "CREATE UNIQUE INDEX items_v ON items (v)",
])
async def test_a_table_whose_shape_changed_since_the_dry_run_plans_afresh(
        empty_database_url: str, ddl: str) -> None:
    """A constraint or index added after the dry run (no change log records it) changes what the
    plan decided, or the foreign keys its kept_parents counts by: the apply plans again."""
    registry = Registry(empty_database_url)
    try:
        request = await _dry_run_of(registry, {1: (0, "a"), 2: (1, "b")}, "DELETE FROM items", "grp = 0")
        conn = await asyncpg.connect(empty_database_url)
        try:
            await conn.execute(ddl)
        finally:
            await conn.close()
        report = await restore_records(empty_database_url, registry.repo, None, request)
        assert report.reuse is not None and report.reuse.status == "not reused", report.reuse
        assert "another shape" in report.reuse.reason
        assert await registry.items() == [(1, 0, "a")]
    finally:
        registry.close()
