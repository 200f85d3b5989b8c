"""Logical-decoding capture writes the change log trigger capture writes.

One cluster with wal_level=logical (started here: the shared test cluster keeps its settings),
two databases: one captured by triggers, one by the slot. The same random program of writes runs
on both; the change logs, read as restore reads them (drained on the way), must be equal.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.cli import main
from api.embedded_postgres import EmbeddedPostgres
from backup.capture import changelog, logical
from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.errors import CaptureError
from backup.restore.records import RestorePlan, RestoreRequest, plan_restore
from backup.restore.source import live_changes
from backup.runner import run_backup
from backup.storage import codec
from backup.storage.change import Change
from backup.storage.file import FileRepository
from backup.storage.reader import list_segments, read_object
from backup.storage.repository import open_repository
from backup.storage.segment import decode_changes

pytestmark = pytest.mark.slow

TABLE = """CREATE TABLE items (
    id int PRIMARY KEY, label text, body text, amount numeric(10,2), seen timestamptz, day date,
    tags text[], doc jsonb);
-- A key checked at the end of each statement: one UPDATE may swap, cycle or shift keys.
CREATE TABLE pairs (id int PRIMARY KEY DEFERRABLE, label text, n int)"""


@pytest.fixture(scope="module")
def logical_server() -> Iterator[str]:
    """A throwaway cluster with wal_level=logical (a server-start setting)."""
    with tempfile.TemporaryDirectory(prefix="vaxvault-logical-") as root:
        cluster = EmbeddedPostgres(Path(root) / "pg", throwaway=True)
        cluster.initialise()
        with open(cluster.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write("wal_level = logical\nmax_replication_slots = 10\nmax_slot_wal_keep_size = '1GB'\n")
        try:
            yield cluster.start()
        finally:
            cluster.destroy()


def _url(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


async def _database(server: str, name: str, mode: str, schema: str = TABLE) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = _url(server, name)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(schema)
        await install(conn, mode=mode)
    finally:
        await conn.close()
    return url


@pytest.fixture(scope="module")
def pair(logical_server: str) -> tuple[str, str]:
    """(trigger-captured, logically captured) databases with the same table."""
    return (asyncio.run(_database(logical_server, "by_trigger", "trigger")),
            asyncio.run(_database(logical_server, "by_slot", "logical")))


def _big(seed: int) -> str:
    """Text that compresses badly, so it is stored out of line (TOASTed)."""
    return "".join(hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(120))


# A program: steps of one session, or of two interleaved ones. Each step is SQL with arguments.
@dataclass(frozen=True)
class Step:
    session: int  # 0 or 1
    sql: str
    args: tuple[object, ...] = ()


def _value_columns(draw: st.DrawFn) -> tuple[object, ...]:
    # Any text PostgreSQL stores (no NUL): quotes, backslashes, non-ASCII.
    label = draw(st.one_of(st.none(), st.text(st.characters(blacklist_characters="\x00",
                                                            blacklist_categories=("Cs",)), max_size=8)))
    body = draw(st.one_of(st.none(), st.just("short"), st.integers(0, 9).map(_big)))
    amount = draw(st.one_of(st.none(), st.decimals(min_value=-999, max_value=999, places=2)))
    seen = draw(st.sampled_from([None, "2026-03-01 10:00:00+02", "2026-11-30 23:59:59.123456+00"]))
    day = draw(st.sampled_from([None, "2026-01-31", "1999-12-31"]))
    tags = draw(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b c", 'q"x', ""]), max_size=3)))
    doc = draw(st.sampled_from([None, '{"a": [1, 2.50, null]}', '"s"', "{}"]))
    return label, body, amount, seen, day, tags, doc


_INSERT = ("INSERT INTO items VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6::text::date, $7, "
           "$8::text::jsonb) ON CONFLICT (id) DO NOTHING")


@st.composite
def programs(draw: st.DrawFn) -> list[list[Step]]:
    """Transactions; each a list of steps. Session 1 runs concurrently with session 0 inside a
    transaction that begins first and commits last (out of start order), on odd keys only.
    Table `pairs` (session 0 only) gets key swaps, cycles and shifts, rows often equal but for
    their key."""
    transactions = []
    fresh = iter(range(1000, 100000))
    for _ in range(draw(st.integers(1, 6))):
        steps: list[Step] = []
        concurrent = draw(st.booleans())
        for _ in range(draw(st.integers(1, 5))):
            session = draw(st.sampled_from([0, 1])) if concurrent else 0
            # Concurrent sessions keep to their own keys, so neither waits for the other's locks.
            key = draw(st.integers(0, 7)) * 2 + session
            kind = draw(st.sampled_from(["insert", "insert", "update", "update_small", "move", "delete",
                                         "bulk", "truncate", "pairs", "pairs", "pairs"]))
            if kind == "insert":
                steps.append(Step(session, _INSERT, (key, *_value_columns(draw))))
            elif kind == "update":
                label, body, *_ = _value_columns(draw)
                steps.append(Step(session, "UPDATE items SET label = $2, body = $3 WHERE id = $1",
                                  (key, label, body)))
            elif kind == "update_small":  # leaves a TOASTed body unchanged
                steps.append(Step(session, "UPDATE items SET amount = coalesce(amount, 0) + 1, day = NULL "
                                           "WHERE id = $1", (key,)))
            elif kind == "move":  # a key change, to a key nobody else uses
                steps.append(Step(session, "UPDATE items SET id = $2 WHERE id = $1",
                                  (key, next(fresh) * 2 + session)))
            elif kind == "delete":
                steps.append(Step(session, "DELETE FROM items WHERE id = $1", (key,)))
            elif kind == "pairs":
                steps.append(_pairs_step(draw))
            elif kind == "bulk" and not concurrent:
                steps.append(Step(0, "UPDATE items SET tags = array_append(tags, 'z') WHERE id % 3 = 0"))
            elif not concurrent:
                steps.append(Step(0, "TRUNCATE items"))
        rollback = draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else False
        transactions.append((steps, rollback))
    return transactions  # type: ignore[return-value]


def _pairs_step(draw: st.DrawFn) -> Step:
    a, b, c = draw(st.lists(st.integers(0, 4), min_size=3, max_size=3, unique=True))
    label = draw(st.sampled_from([None, "x", "y"]))
    kind = draw(st.sampled_from(["insert", "swap", "swap", "cycle", "shift", "label", "truncate"]))
    if kind == "insert":  # rows a..a+2 that are missing
        return Step(0, "INSERT INTO pairs SELECT g, $2::text, $3 FROM generate_series($1, $1 + 2) g "
                       "WHERE NOT EXISTS (SELECT FROM pairs WHERE id = g)",
                    (a, label, draw(st.sampled_from([None, 1]))))
    if kind == "swap":
        return Step(0, "UPDATE pairs SET id = CASE id WHEN $1 THEN $2 ELSE $1 END WHERE id IN ($1, $2)",
                    (a, b))
    if kind == "cycle":  # with a label change: rows of the run differ from what they were
        return Step(0, "UPDATE pairs SET id = CASE id WHEN $1 THEN $2 WHEN $2 THEN $3 ELSE $1 END, "
                       "label = coalesce(label, $4::text) WHERE id IN ($1, $2, $3)", (a, b, c, label))
    if kind == "shift":
        return Step(0, "UPDATE pairs SET id = id + 1 WHERE id >= $1", (a,))
    if kind == "label":
        return Step(0, "UPDATE pairs SET label = $2::text WHERE id >= $1", (a, label))
    return Step(0, "TRUNCATE pairs")


async def _run_program(url: str, program: list[tuple[list[Step], bool]],
                       mark_after: int | None = None) -> datetime | None:
    """Run `program`; return the time after its first `mark_after` transactions, if asked."""
    sessions = [await asyncpg.connect(url), await asyncpg.connect(url)]
    marked = None
    try:
        for number, (steps, rollback) in enumerate(program):
            if number == mark_after:
                marked = await sessions[0].fetchval("SELECT clock_timestamp()")
            used = sorted({s.session for s in steps})
            # Session 1 (when used) begins first and commits last.
            for session in reversed(used):
                await sessions[session].execute("BEGIN")
            for step in steps:
                await sessions[step.session].execute(step.sql, *step.args)
            for session in used:
                await sessions[session].execute("ROLLBACK" if rollback else "COMMIT")
    finally:
        for conn in sessions:
            await conn.close()
    return marked


async def _reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE items, pairs")
        if await logical.mode(conn) == "logical":
            async with conn.transaction(isolation="repeatable_read"):
                await logical.lock(conn)
                await logical.drain(conn, url)
        await conn.execute("DELETE FROM vaxvault_backup.changes")
    finally:
        await conn.close()


async def _raw_log(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT txid::text, table_name, op, key::text, old::text, new::text "
                                "FROM vaxvault_backup.changes ORDER BY position")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def _by_row(log: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """What restore relies on: per row, its changes in position order, between TRUNCATEs."""
    epochs: list[dict[object, list[tuple[object, ...]]]] = [{}]
    for _txid, _table, op, key, old, new in log:
        if op == b"T":
            epochs.append({})
        else:
            epochs[-1].setdefault(key, []).append((op, old, new))
    return [tuple(sorted(epoch.items(), key=repr)) for epoch in epochs]


def _states(log: list[tuple[object, ...]], table: str) -> list[dict[object, object]]:
    """`table` after each transaction that changed it, replayed as restore replays the log (the
    last change per key wins); a transaction that left it as it was is not counted."""
    states: list[dict[object, object]] = [{}]
    state: dict[object, object] = {}
    previous = None
    for txid, name, op, key, _old, new in log:
        if name != table:
            continue
        if txid != previous and state != states[-1]:
            states.append(dict(state))
        previous = txid
        if op == b"T":
            state.clear()
        elif op == b"D":
            state.pop(key, None)
        else:
            state[key] = new
    if state != states[-1]:
        states.append(state)
    return states


def _table(log: list[tuple[object, ...]], table: str) -> list[tuple[object, ...]]:
    return [change for change in log if change[1] == table]


def _transactions(log: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The changes grouped by transaction id (ids differ between the databases: compared as sets)."""
    groups: dict[object, list[tuple[object, ...]]] = {}
    for txid, *change in log:
        groups.setdefault(txid, []).append(tuple(change))
    return sorted((tuple(sorted(g, key=repr)) for g in groups.values()), key=repr)


def _changes(changes: list[Change]) -> list[tuple[object, ...]]:
    return [(c.table, c.op, c.key, c.old, c.new) for c in changes]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(program=programs())
def test_logical_capture_writes_the_log_trigger_capture_writes(
        pair: tuple[str, str], program: list[tuple[list[Step], bool]]) -> None:
    async def go() -> None:
        for url in pair:
            await _reset(url)
            await _run_program(url, program)
        # As find-loss reads it: the slot drained on the way.
        read = [await live_changes(url, "items") for url in pair]
        log = [await _raw_log(url) for url in pair]
        raw = [_table(entries, "items") for entries in log]
        assert _by_row(raw[1]) == _by_row(raw[0])
        assert _transactions(raw[1]) == _transactions(raw[0])
        # Keys moved by one statement (DEFERRABLE key): the same table after every transaction.
        assert _states(log[1], "pairs") == _states(log[0], "pairs")
        assert sorted(_changes(read[1]), key=repr) == sorted(_changes(read[0]), key=repr)
        # Nothing is drained twice.
        again = await live_changes(pair[1], "items")
        assert len(again) == len(read[1])

    asyncio.run(go())


def _shipped(config: BackupConfig) -> list[Change]:
    repo = open_repository(config.primary_url or "")
    changes: list[Change] = []
    for segment in list_segments(repo):
        data = codec.decode(read_object(repo, segment.object), segment.object.key, None)
        changes.extend(decode_changes(data, segment.object.key))
    return changes


def _per_row(changes: list[Change]) -> list[tuple[object, ...]]:
    return _by_row([(c.txid, c.table, c.op.encode(), repr(c.key), c.old, c.new) for c in changes])


async def test_backups_ship_the_same_segments_and_a_lost_slot_asks_for_a_full_run(
        pair: tuple[str, str], tmp_path: Path) -> None:
    before = [([Step(0, _INSERT, (key, "a", _big(key), None, None, None, None, None)) for key in (1, 2, 4)],
               False)]
    program = [([Step(1, "UPDATE items SET label = 'late' WHERE id = 1"),
                 Step(0, "UPDATE items SET amount = 5 WHERE id = 2"),
                 Step(0, "UPDATE items SET id = 8 WHERE id = 2")], False),
               ([Step(0, "DELETE FROM items WHERE id = 1")], True),
               # T falls here
               ([Step(0, "DELETE FROM items WHERE id = 4"),
                 Step(0, "UPDATE items SET body = 'b' WHERE id = 1"),
                 Step(0, _INSERT, (9, None, None, None, None, None, None, None))], False)]
    shipped, plans = [], []
    for url in pair:
        await _reset(url)
        name = url.rsplit("/", 1)[1]
        config = BackupConfig(database_url=url, spool_dir=tmp_path / name / "spool",
                              primary_url=(tmp_path / name / "primary").as_uri())
        await _run_program(url, before)
        await run_backup(config, full=True)
        as_of = await _run_program(url, program, mark_after=2)
        assert as_of is not None
        repo = open_repository(config.primary_url or "")
        request = RestoreRequest(table="items", as_of=as_of, sample_size=100)
        from_live_log = await plan_restore(url, repo, None, request)  # drains the slot first
        summary = await run_backup(config, full=False)
        assert summary.changes == 7
        assert (await run_backup(config, full=False)).changes == 0  # nothing shipped twice
        shipped.append(_shipped(config))
        plans.append((_plan(from_live_log), _plan(await plan_restore(url, repo, None, request))))
    assert _per_row(shipped[1]) == _per_row(shipped[0])
    # Restore as of T (inside the program) plans the same from either capture.
    assert plans[1] == plans[0]
    assert plans[0][0][0]["write_back"] + plans[0][0][0]["reinsert"] > 0

    # The slot is dropped (or lost WAL, or the server is a promoted standby): the log may lack
    # changes, so an incremental is refused with the fix, and a full run recreates the slot.
    url = pair[1]
    config = BackupConfig(database_url=url, spool_dir=tmp_path / "slot" / "spool",
                          primary_url=(tmp_path / "slot" / "primary").as_uri())
    await run_backup(config, full=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM vaxvault_backup.decoding")
        await conn.execute("UPDATE items SET label = 'lost' WHERE id = 9")
        with pytest.raises(CaptureError, match=r"does not exist.*run 'vaxvault backup run --full'"):
            await run_backup(config, full=False)
        full = await run_backup(config, full=True)
        assert full.segment_id is None  # its segment would miss the lost changes: a new chain
        await conn.execute("UPDATE items SET label = 'after' WHERE id = 9")
    finally:
        await conn.close()
    after = await run_backup(config, full=False)
    assert after.changes == 1
    assert after.slot_safe_wal is not None and after.slot_safe_wal > 0  # max_slot_wal_keep_size is set
    [change] = [c for c in _shipped(config) if c.position > 0 and c.new and c.new["label"] == "after"]
    assert change.old is not None and change.old["label"] == "lost"


def _plan(plan: RestorePlan) -> tuple[object, ...]:
    # Positions are the log's own numbers: the two databases' logs start at different ones.
    rows = sorted((repr(d.key), d.action, re.sub(r"position \d+", "position N", d.reason),
                   repr(sorted(d.columns.items())))
                  for d in plan.sample + plan.conflicts)
    return dict(plan.counts), plan.matched, plan.conflicts_total, plan.used_live_log, rows


def test_init_asking_for_logical_capture_without_wal_level_logical_says_how(
        database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", database_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_CAPTURE", "logical")
    assert main(["backup", "init"]) == 1
    err = capsys.readouterr().err
    assert "logical capture needs wal_level=logical" in err and "ALTER SYSTEM SET wal_level = logical" in err
    monkeypatch.setenv("VAXVAULT_BACKUP_CAPTURE", "sideways")
    assert main(["backup", "init"]) != 0
    assert "VAXVAULT_BACKUP_CAPTURE='sideways' must be one of trigger, logical" in capsys.readouterr().err


async def _one_item_backed_up(url: str, item: int, tmp_path: Path) -> BackupConfig:
    """The logical database reset to one item and fully backed up; the backup's config."""
    await _reset(url)
    await _run_program(url, [([Step(0, _INSERT, (item, "a", None, None, None, None, None, None))], False)])
    config = BackupConfig(database_url=url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri())
    await run_backup(config, full=True)
    return config


async def test_a_transaction_drained_but_not_visible_at_the_cut_ships_once_in_the_next_segment(
        pair: tuple[str, str], tmp_path: Path) -> None:
    """The cut's drain reads the WAL up to a point after its snapshot, so it also moves into the
    log a transaction that committed after the snapshot: that one belongs to the next segment."""
    url = pair[1]
    config = await _one_item_backed_up(url, 5, tmp_path)
    conn = await asyncpg.connect(url)
    writer = await asyncpg.connect(url)
    try:
        previous = await conn.fetchval("SELECT watermark FROM vaxvault_backup.state")
        async with conn.transaction(isolation="repeatable_read"):
            await logical.lock(conn)  # as runner._cut does
            position = await conn.fetchval("SELECT pg_current_snapshot()::text")
            await writer.execute("UPDATE items SET label = 'between' WHERE id = 5")  # commits now
            assert await logical.drain(conn, url) == 1
            segment = await changelog.cut_segment(conn, previous, position, datetime.now(UTC),
                                                  FileRepository(tmp_path / "cut"), None, drained=True)
        assert segment is None  # not visible at `position`: not this segment's
        await conn.execute("UPDATE vaxvault_backup.state SET watermark = $1", position)
    finally:
        await conn.close()
        await writer.close()
    shipped = await run_backup(config, full=False)
    assert shipped.changes == 1
    [change] = [c for c in _shipped(config) if c.new and c.new["label"] == "between"]
    assert change.old is not None and change.old["label"] == "a"


async def test_a_drained_cut_writes_typed_images_of_only_the_changes_it_ships(
        pair: tuple[str, str], tmp_path: Path) -> None:
    """The typed images (format 2.1) of a drained cut hold exactly the segment's changes: a
    transaction the drain moved into the log but the cut's snapshot does not see is left out of
    the image as it is of the lines (restore reads the image first: an extra row there would be
    restored from the wrong segment and shipped twice)."""
    url = pair[1]
    await _one_item_backed_up(url, 6, tmp_path)
    conn = await asyncpg.connect(url)
    writer = await asyncpg.connect(url)
    try:
        previous = await conn.fetchval("SELECT watermark FROM vaxvault_backup.state")
        await writer.execute("UPDATE items SET label = 'seen' WHERE id = 6")  # before the cut
        async with conn.transaction(isolation="repeatable_read"):
            await logical.lock(conn)
            position = await conn.fetchval("SELECT pg_current_snapshot()::text")
            await writer.execute("UPDATE items SET label = 'later' WHERE id = 6")  # after it
            assert await logical.drain(conn, url) == 2
            segment = await changelog.cut_segment(conn, previous, position, datetime.now(UTC),
                                                  FileRepository(tmp_path / "cut"), None, drained=True)
    finally:
        await conn.close()
        await writer.close()
    assert segment is not None and segment.changes == 1
    image = segment.image("items")
    assert image is not None and image.rows == 1


@pytest.mark.parametrize(("xid", "reference", "full"), [
    (100, 200, 100),                          # older, same epoch
    (300, 200, 300),                          # got its id after the snapshot (epoch 0: not negative)
    (0xFFFF_FF00, (1 << 32) + 5, 0xFFFF_FF00),  # older, from the epoch before
    (5, 0xFFFF_FF00, (1 << 32) + 5),          # newer, already in the next epoch
])
def test_a_decoded_xid_gets_the_epoch_nearest_now(xid: int, reference: int, full: int) -> None:
    assert logical._xid8(xid, reference) == full


async def test_a_column_named_like_the_drains_row_alias_is_captured_whole(logical_server: str) -> None:
    """The drain rebuilds each image as to_json of a row aliased r: a column named r must not
    be taken for the row (the trigger function had the same trap with n and o)."""
    admin = await asyncpg.connect(logical_server)
    try:
        await admin.execute("CREATE DATABASE with_r")
    finally:
        await admin.close()
    url = _url(logical_server, "with_r")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE odd (id int PRIMARY KEY, r int, n text)")
        await install(conn, mode="logical")
        await conn.execute("INSERT INTO odd VALUES (1, 5, 'x')")
        async with conn.transaction(isolation="repeatable_read"):
            await logical.lock(conn)
            assert await logical.drain(conn, url) == 1
        image = await conn.fetchval(
            "SELECT new::jsonb::text FROM vaxvault_backup.changes WHERE table_name = 'odd'")
        assert image == '{"n": "x", "r": 5, "id": 1}'
    finally:
        await conn.close()


async def _ddl_database(server: str, name: str) -> str:
    """A logically captured database of its own (these tests change its schema)."""
    return await _database(server, name, "logical", "CREATE TYPE mood AS ENUM ('calm', 'cross'); "
                           "CREATE DOMAIN small AS int; "
                           "CREATE TABLE things (id int PRIMARY KEY, label text, feeling mood, size small)")


async def _drain(url: str) -> list[tuple[object, ...]]:
    """Drain the slot (as restore does) and return the log."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            await logical.lock(conn)
            await logical.drain(conn, url)
        rows = await conn.fetch("SELECT op, key::text, new::text FROM vaxvault_backup.changes "
                                "ORDER BY position")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


async def test_a_renamed_key_column_and_a_dropped_type_still_drain(logical_server: str) -> None:
    """Changes made before a migration are decoded as the table was then: a key column renamed
    since is found by today's name, a type dropped since is read as its text (restore populates
    an int column from "7" as from 7), a domain as its base type (a CHECK added since does not
    stop the drain)."""
    url = await _ddl_database(logical_server, "migrated")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO things VALUES (1, 'before', 'cross', 7)")
        await conn.execute("ALTER TABLE things RENAME COLUMN id TO ident")
        await conn.execute("INSERT INTO things VALUES (2, 'renamed', 'calm', 8)")
        await conn.execute("UPDATE things SET ident = 3 WHERE ident = 2")
        await conn.execute("ALTER TABLE things ALTER COLUMN feeling TYPE text; DROP TYPE mood")
        await conn.execute("ALTER TABLE things ALTER COLUMN size TYPE int; DROP DOMAIN small")
        await conn.execute("CREATE DOMAIN big AS int; ALTER TABLE things ADD COLUMN weight big")
        await conn.execute("INSERT INTO things VALUES (4, NULL, NULL, NULL, 5)")
        await conn.execute("ALTER DOMAIN big ADD CHECK (VALUE > 10) NOT VALID")
    finally:
        await conn.close()
    assert await _drain(url) == [
        (b"I", '{"id" : 1}', '{"id":1,"label":"before","feeling":"cross","size":"7"}'),
        (b"I", '{"ident" : 2}', '{"ident":2,"label":"renamed","feeling":"calm","size":"8"}'),
        (b"D", '{"ident" : 2}', None),
        (b"I", '{"ident" : 3}', '{"ident":3,"label":"renamed","feeling":"calm","size":"8"}'),
        (b"I", '{"ident" : 4}', '{"ident":4,"label":null,"feeling":null,"size":null,"weight":5}')]


async def test_a_change_no_drain_can_decode_stops_incrementals_and_a_full_run_starts_over(
        logical_server: str, tmp_path: Path) -> None:
    """A key column renamed twice between two drains: the change made in between is named by
    neither key. Every drain would stop at it: the incremental says so and how to get out; the
    full run recreates the slot and starts a new chain, and incrementals follow it."""
    url = await _ddl_database(logical_server, "renamed_twice")
    config = BackupConfig(database_url=url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri())
    await run_backup(config, full=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE things RENAME COLUMN id TO ident")
        await conn.execute("INSERT INTO things VALUES (1, 'lost', NULL, NULL)")
        await conn.execute("ALTER TABLE things RENAME COLUMN ident TO num")
        for _ in range(2):  # the same, every time
            with pytest.raises(CaptureError, match=r"things cannot be keyed: .*\(ident, label, feeling, "
                                                   r"size\).*run 'vaxvault backup run --full'"):
                await run_backup(config, full=False)
        full = await run_backup(config, full=True)
        assert full.segment_id is None and full.rows == 1  # a new chain; the snapshot has the row
        await conn.execute("UPDATE things SET label = 'after' WHERE num = 1")
    finally:
        await conn.close()
    after = await run_backup(config, full=False)
    assert after.changes == 1
    [change] = [c for c in _shipped(config) if c.new and c.new.get("label") == "after"]
    assert change.key == {"num": 1} and change.old is not None and change.old["label"] == "lost"


async def test_init_switches_logical_capture_back_to_triggers_losing_and_doubling_nothing(
        logical_server: str, tmp_path: Path) -> None:
    """`backup init` with trigger capture on a logically captured database: the changes still in
    the slot are drained in the transaction that adds the triggers, later ones are the triggers',
    each once; the slot (which holds WAL) and the publication are dropped."""
    url = await _ddl_database(logical_server, "switched")
    config = BackupConfig(database_url=url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri())
    await run_backup(config, full=True)
    conn = await asyncpg.connect(url)
    writer = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO things VALUES (1, 'in the slot', NULL, NULL)")
        # A writer in flight when init starts: init waits for it, and it is in the slot.
        await writer.execute("BEGIN; INSERT INTO things VALUES (2, 'in flight', NULL, NULL)")
        switch = asyncio.ensure_future(install(conn, mode="trigger", database_url=url))
        await asyncio.sleep(0.5)
        assert not switch.done()
        await writer.execute("COMMIT")
        assert (await switch).mode == "trigger"
        await conn.execute("UPDATE things SET label = 'by trigger' WHERE id = 1")
        assert await logical.mode(conn) == "trigger"
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")
        assert not await conn.fetchval("SELECT count(*) FROM pg_publication")
        assert await conn.fetchval("SELECT relreplident::text FROM pg_class WHERE relname = 'things'") == "d"
    finally:
        await conn.close()
        await writer.close()
    assert (await run_backup(config, full=False)).changes == 3
    shipped = [(c.op, c.key, c.new and c.new["label"]) for c in _shipped(config)]
    assert shipped == [("I", {"id": 1}, "in the slot"), ("I", {"id": 2}, "in flight"),
                       ("U", {"id": 1}, "by trigger")]


async def test_switching_back_to_triggers_refuses_to_leave_a_captured_table_out(logical_server: str) -> None:
    """The switch drops the slot, so a logically captured table not given triggers would be
    captured by neither: init refuses, and capture stays logical for both."""
    url = await _database(logical_server, "switched_part", "logical",
                          "CREATE TABLE first (id int PRIMARY KEY, v text); "
                          "CREATE TABLE second (id int PRIMARY KEY, v text)")
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(CaptureError, match=r"second would lose capture"):
            await install(conn, ("first",), mode="trigger", database_url=url)
        assert await logical.mode(conn) == "logical"
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()") == 1
        await conn.execute("INSERT INTO second VALUES (1, 'still captured')")
        [(_, _, image)] = await _drain(url)
        assert "still captured" in image
    finally:
        await conn.close()
