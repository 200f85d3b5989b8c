"""restore_records beyond the acceptance scenario: pruning, overwrite, truncate, kill -9 safety."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from api.domain.disaster_recovery import restore_registry
from backup.config import BackupConfig
from backup.restore.full import plan_full
from backup.restore.predicate import parse
from backup.restore.records import ConflictPolicy, RestoreRequest, plan_restore, restore_records
from backup.runner import run_backup
from backup.storage.repository import open_repository
from tests.restore.scenario import database_now, doses_now, prepare, scenario_config, strike

pytestmark = pytest.mark.slow


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> BackupConfig:
    return scenario_config(database_url, tmp_path)


async def test_key_ranges_prune_chunks_and_truncate_is_restored(config: BackupConfig,
                                                                empty_database_url: str) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    conn = await asyncpg.connect(config.database_url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM doses")
        before = await conn.fetch("SELECT to_jsonb(d)::text AS image FROM doses d ORDER BY id")
        await conn.execute("TRUNCATE doses")
    finally:
        await conn.close()
    await run_backup(config, full=False)
    repo = open_repository(config.primary_url or "")
    # A full restore as of after the TRUNCATE replays it: no doses, everything else there.
    full = await restore_registry(empty_database_url, repo, None, plan_full(repo, None, None), "test")
    rows = {t.table: t.rows_at_t for t in full.load.tables}
    assert rows["doses"] == 0 and rows["recipients"] > 0
    narrow = RestoreRequest(table="doses", as_of=as_of, where=parse("id BETWEEN 1 AND 50"))
    plan = await plan_restore(config.database_url, repo, None, narrow)
    assert plan.chunks_read == 1 < plan.chunks_total
    assert plan.counts["reinsert"] == 50
    report = await restore_records(config.database_url, repo, None,
                                   RestoreRequest(table="doses", as_of=as_of))
    assert report.reinserted == total
    conn = await asyncpg.connect(config.database_url)
    try:
        after = await conn.fetch("SELECT to_jsonb(d)::text AS image FROM doses d ORDER BY id")
    finally:
        await conn.close()
    assert after == before


async def test_overwrite_takes_conflicts_back_too(config: BackupConfig) -> None:
    await prepare(config)
    incident = await strike(config)
    repo = open_repository(config.primary_url or "")
    conn = await asyncpg.connect(config.database_url)
    try:
        as_of = await conn.fetchval("SELECT max(committed_at) FROM (SELECT coalesce("
                                    "pg_xact_commit_timestamp(txid::xid), captured_at) AS committed_at "
                                    "FROM vaxvault_backup.changes WHERE table_name = 'doses' "
                                    "AND op = 'D') x")
    finally:
        await conn.close()
    # T just before the incident's commit (deletes and nulls share it).
    as_of = as_of.replace(microsecond=as_of.microsecond - 1) if as_of.microsecond else as_of
    where = parse(f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1")
    request = RestoreRequest(table="doses", as_of=as_of, where=where, on_conflict=ConflictPolicy.OVERWRITE)
    report = await restore_records(config.database_url, repo, None, request)
    assert report.overwritten == 1 and report.restored == len(incident.damaged)
    now = await doses_now(config.database_url, incident.damaged)
    assert now == {i: incident.before[i] for i in incident.damaged}


async def test_a_deleted_row_recorded_again_since_is_a_conflict_not_a_failure(config: BackupConfig) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    again = min(incident.deleted)
    conn = await asyncpg.connect(config.database_url)
    try:
        new_id = await conn.fetchval(
            "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
            "center_id, recorded_by) SELECT (i->>'recipient_id')::bigint, 1, i->>'vaccine_code', 'AGAIN', "
            "(i->>'administered_on')::date, (i->>'center_id')::int, 'staff' FROM (SELECT $1::jsonb AS i) x "
            "RETURNING id", json.dumps(incident.before[again]))
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    where = parse(f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1")
    for policy in (ConflictPolicy.OVERWRITE, ConflictPolicy.SKIP):
        report = await restore_records(config.database_url, repo, None, RestoreRequest(
            table="doses", as_of=as_of, where=where, on_conflict=policy))
        reasons = {c.key["id"]: c.reason for c in report.plan.conflicts}
        assert "doses_one_per_number (recipient_id, dose_number) is held by a row recorded since" \
            in reasons[again]
    now = await doses_now(config.database_url, incident.damaged | {new_id})
    assert again not in now and now[new_id]["lot_number"] == "AGAIN"
    assert all(now[i] == incident.before[i] for i in incident.deleted - {again})


async def test_kill_9_mid_restore_leaves_nothing(config: BackupConfig, tmp_path: Path) -> None:
    """The restore blocks on a row lock after re-inserting rows; kill -9 must leave none of them."""
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await run_backup(config, full=False)
    where = f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VAXVAULT_") or k.startswith("VAXVAULT_TEST")}
    env.update(VAXVAULT_DATABASE_URL=config.database_url, VAXVAULT_BACKUP_URL=config.primary_url or "",
               VAXVAULT_STATE_DIR=str(tmp_path / "state"))
    holder = await asyncpg.connect(config.database_url)
    watcher = await asyncpg.connect(config.database_url)
    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT id FROM doses WHERE id = $1 FOR UPDATE", max(incident.nulled))
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "vaxvault"), "restore", "records", "--as-of",
            as_of.isoformat(), "--table", "doses", "--where", where, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not await watcher.fetchval(WAITING_UPDATE):
            assert process.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await holder.execute("ROLLBACK")
        # The orphaned server session notices the dead client once the lock is free, then aborts.
        while await watcher.fetchval(RESTORE_SESSIONS):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        now = await doses_now(config.database_url, incident.damaged)
        assert set(now) == incident.nulled
        assert all(row["administered_on"] is None for row in now.values())
        assert await watcher.fetchval("SELECT count(*) FROM audit_log WHERE action = 'restore'") == 0
    finally:
        await holder.close()
        await watcher.close()


WAITING_UPDATE = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
AND wait_event_type = 'Lock' AND query LIKE 'UPDATE %'
"""
RESTORE_SESSIONS = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
AND (query LIKE 'UPDATE %' OR query LIKE 'INSERT %') AND state <> 'idle'
"""
