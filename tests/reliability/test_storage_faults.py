"""Storage faults and crash safety for backup and restore.

- A restore reading its repository through a faulty network (500/503, dropped connections,
  latency, torn downloads) either restores every damaged row exactly or fails cleanly with a
  BackupError and changes nothing: never a partial restore.
- kill -9 of a restore at known points (held by a lock the test holds): inside its transaction
  the registry is unchanged, after it the registry is restored, never half; a later restore
  completes; the repository still verifies.
- kill -9 of a full backup at known points (before and after its snapshot is pushed): the
  repository still verifies and holds exactly the snapshots pushed; the next run succeeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.errors import BackupError
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, restore_records
from backup.runner import run_backup
from backup.storage.file import FileRepository
from backup.storage.reader import list_snapshots
from backup.storage.repository import open_repository
from tests.faulty_proxy import ALL_FAULTS, FaultyProxy
from tests.processes import kill_when
from tests.restore.scenario import Incident, database_now, doses_now, prepare, strike

VAXVAULT = Path(sys.executable).parent / "vaxvault"


async def _restore_audits(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'restore'"))
    finally:
        await conn.close()


def _where(incident: Incident) -> str:
    return f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1"


async def _state(url: str, incident: Incident) -> str:
    """'damaged' (exactly as the incident left it), 'restored' (every row back but the one fixed
    legitimately since), or 'partial' (anything else)."""
    now = await doses_now(url, incident.damaged)
    if set(now) == incident.nulled and all(r["administered_on"] is None for r in now.values()):
        return "damaged"
    expected = {i: incident.before[i] for i in incident.damaged if i != incident.lot_fixed}
    if {i: r for i, r in now.items() if i != incident.lot_fixed} == expected:
        return "restored"
    return "partial"


async def _incident(config: BackupConfig) -> tuple[datetime, Incident]:
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await run_backup(config, full=False)
    return as_of, incident


@pytest.mark.parametrize("seed", [1, 2])
async def test_restore_through_faulty_storage_is_all_or_nothing(
        database_url: str, tmp_path: Path, s3_endpoint_url: str, s3_bucket: str, seed: int) -> None:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=f"s3://{s3_bucket}/primary", s3_endpoint_url=s3_endpoint_url,
                          chunk_rows=300)
    as_of, incident = await _incident(config)
    request = RestoreRequest(table="doses", as_of=as_of, where=parse(_where(incident)),
                             actor="reliability")
    with FaultyProxy(s3_endpoint_url, fail_rate=0.2, seed=seed, faults=ALL_FAULTS) as proxy:
        repo = open_repository(config.primary_url or "", proxy.url)
        try:
            report = await restore_records(database_url, repo, None, request)
            failure = None
        except BackupError as exc:
            report, failure = None, str(exc)
    assert proxy.faults > 0
    state = await _state(database_url, incident)
    if failure is None:
        assert report is not None and report.restored == len(incident.damaged) - 1
        assert state == "restored" and await _restore_audits(database_url) == 1
    else:
        assert failure.strip(), "a failure must say what went wrong"
        assert state == "damaged" and await _restore_audits(database_url) == 0


async def test_restore_during_a_storage_outage_fails_cleanly(
        database_url: str, tmp_path: Path, s3_endpoint_url: str, s3_bucket: str) -> None:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=f"s3://{s3_bucket}/primary", s3_endpoint_url=s3_endpoint_url,
                          chunk_rows=300)
    as_of, incident = await _incident(config)
    request = RestoreRequest(table="doses", as_of=as_of, where=parse(_where(incident)),
                             actor="reliability")
    with FaultyProxy(s3_endpoint_url, fail_rate=1.0, seed=0, faults=("503", "drop")) as proxy:
        repo = open_repository(config.primary_url or "", proxy.url)
        with pytest.raises(BackupError) as failure:
            async with asyncio.timeout(120):  # retries are bounded: a hang fails here
                await restore_records(database_url, repo, None, request)
    assert proxy.faults > 0
    assert str(failure.value).strip()
    assert await _state(database_url, incident) == "damaged"
    assert await _restore_audits(database_url) == 0


def _env(config: BackupConfig, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VAXVAULT_") or k.startswith("VAXVAULT_TEST")}
    env.update(VAXVAULT_DATABASE_URL=config.database_url, VAXVAULT_BACKUP_URL=config.primary_url or "",
               VAXVAULT_BACKUP_SPOOL_DIR=str(config.spool_dir),
               VAXVAULT_STATE_DIR=str(tmp_path / "state"))
    return env


async def _waiting(watcher: asyncpg.Connection, statement: str) -> bool:
    """Whether a session of this database waits on a lock in a statement LIKE `statement`%."""
    return bool(await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE $1", statement + "%"))


async def _kill_when_waiting(command: list[str], env: dict[str, str], watcher: asyncpg.Connection,
                             statement: str) -> int:
    """Start `command`, SIGKILL it once it waits on a lock in `statement`; its return code.

    The test holds that lock, so the kill lands at a known point of the run, not a random one.
    """
    return await kill_when(command, env, lambda: _waiting(watcher, statement), statement)


async def _wait_for_orphans(url: str) -> None:
    """A killed client's server session ends on its own; wait until it has (and rolled back)."""
    conn = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(60):  # a bound on a hang, not a measurement
            while await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state <> 'idle'"):
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VAXVAULT), "backup", "verify"], env=env, capture_output=True,
                          text=True, check=False)


# Where a restore is killed: the lock the test holds, and the statement that waits for it.
RESTORE_POINTS = {
    # A dose the restore must re-insert is being inserted, uncommitted, by another session.
    "reinserting": "INSERT INTO %doses",
    # Every row is written; the audit entry, the last statement before COMMIT, waits.
    "auditing": "INSERT INTO %audit_log",
}


@pytest.mark.parametrize("point", [*RESTORE_POINTS, "after exit"])
async def test_kill_9_of_a_restore_leaves_nothing_or_everything(
        database_url: str, tmp_path: Path, point: str) -> None:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)
    as_of, incident = await _incident(config)
    env = _env(config, tmp_path)
    command = [str(VAXVAULT), "restore", "records", "--as-of", as_of.isoformat(), "--table", "doses",
               "--where", _where(incident)]
    holder = await asyncpg.connect(database_url)
    watcher = await asyncpg.connect(database_url)
    try:
        if point == "after exit":
            finished = await asyncio.create_subprocess_exec(*command, env=env,
                                                            stdout=asyncio.subprocess.DEVNULL)
            assert await finished.wait() == 0
        else:
            await holder.execute("BEGIN")
            if point == "reinserting":
                image = incident.before[min(incident.deleted)]
                await holder.execute(
                    "INSERT INTO doses OVERRIDING SYSTEM VALUE "
                    "SELECT * FROM jsonb_populate_record(NULL::doses, $1::jsonb)",
                    json.dumps(image))
            else:
                await holder.execute("LOCK TABLE audit_log IN SHARE MODE")
            code = await _kill_when_waiting(command, env, watcher, RESTORE_POINTS[point])
            assert code == -signal.SIGKILL
            await holder.execute("ROLLBACK")
    finally:
        await holder.close()
        await watcher.close()
    await _wait_for_orphans(database_url)
    expected = "restored" if point == "after exit" else "damaged"
    assert await _state(database_url, incident) == expected, f"killed while {point}"
    assert await _restore_audits(database_url) == (1 if expected == "restored" else 0)
    # The operator runs it again: it completes (or finds nothing left to do).
    request = RestoreRequest(table="doses", as_of=as_of, where=parse(_where(incident)),
                             actor="reliability")
    await restore_records(database_url, open_repository(config.primary_url or ""), None, request)
    assert await _state(database_url, incident) == "restored"
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# Where a full backup is killed, after its snapshot is complete in the spool.
BACKUP_POINTS = {
    # Before it is pushed: recording the new watermark waits on the state row.
    "recording the watermark": "UPDATE %vaxvault_backup%state",
    # After it is pushed and verified: trimming the shipped change log waits.
    "trimming the change log": "DELETE FROM %vaxvault_backup%changes",
}


@pytest.mark.parametrize("point", list(BACKUP_POINTS))
async def test_kill_9_of_a_backup_keeps_the_repository_valid(
        seeded_database_url: str, tmp_path: Path, point: str) -> None:
    config = BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=100)
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn)
    finally:
        await conn.close()
    await run_backup(config, full=True)
    primary = open_repository(config.primary_url or "")
    assert len(list_snapshots(primary)) == 1
    env = _env(config, tmp_path)
    holder = await asyncpg.connect(seeded_database_url)
    watcher = await asyncpg.connect(seeded_database_url)
    try:
        watermark = await watcher.fetchval("SELECT watermark FROM vaxvault_backup.state")
        await holder.execute("BEGIN")
        if point == "recording the watermark":
            await holder.execute("SELECT 1 FROM vaxvault_backup.state FOR UPDATE")
        else:
            await holder.execute("LOCK TABLE vaxvault_backup.changes IN SHARE MODE")
        code = await _kill_when_waiting([str(VAXVAULT), "backup", "run", "--full"], env, watcher,
                                        BACKUP_POINTS[point])
        assert code == -signal.SIGKILL
        await holder.execute("ROLLBACK")
        await _wait_for_orphans(seeded_database_url)
        moved = await watcher.fetchval("SELECT watermark FROM vaxvault_backup.state") != watermark
    finally:
        await holder.close()
        await watcher.close()
    # The server finishes the statement the dead client left waiting: the watermark moves
    # either way. What differs is where the killed run's complete snapshot is.
    assert moved
    first = [m.id for m in list_snapshots(primary)]
    spooled = [m.id for m in list_snapshots(FileRepository(config.spool_dir))]
    if point == "recording the watermark":
        assert (len(first), len(spooled)) == (1, 1), "kept in the spool, not pushed yet"
        killed_run = spooled[0]
    else:
        assert (len(first), spooled) == (2, []), "pushed, verified and released from the spool"
        killed_run = first[1]
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rerun = subprocess.run([str(VAXVAULT), "backup", "run", "--full"], env=env, capture_output=True,
                           text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    after = [m.id for m in list_snapshots(primary)]
    assert len(after) == 3 and after[:2] == [first[0], killed_run], after
    assert list_snapshots(FileRepository(config.spool_dir)) == []
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
