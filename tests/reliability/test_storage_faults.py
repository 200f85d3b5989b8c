"""Storage faults and crash safety for backup and restore.

- A restore reading its repository through a faulty network (500/503, dropped connections,
  latency, torn downloads) either restores every damaged row exactly or fails cleanly with a
  BackupError and changes nothing: never a partial restore.
- kill -9 of a restore at random moments (several seeds): the registry is unchanged or fully
  restored, never half; a later restore completes; the repository still verifies.
- kill -9 of a full backup at random moments (several seeds): the repository still verifies,
  and the next run succeeds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
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
from backup.storage.repository import open_repository
from tests.faulty_proxy import ALL_FAULTS, FaultyProxy
from tests.restore.scenario import Incident, doses_now, prepare, strike

VAXVAULT = Path(sys.executable).parent / "vaxvault"


async def _now(url: str) -> datetime:
    conn = await asyncpg.connect(url)
    try:
        moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return moment
    finally:
        await conn.close()


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
    as_of = await _now(config.database_url)
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
    started = time.monotonic()
    with FaultyProxy(s3_endpoint_url, fail_rate=1.0, seed=0, faults=("503", "drop")) as proxy:
        repo = open_repository(config.primary_url or "", proxy.url)
        with pytest.raises(BackupError) as failure:
            await restore_records(database_url, repo, None, request)
    assert time.monotonic() - started < 90, "retries must be bounded"
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


async def _kill_at_random(command: list[str], env: dict[str, str], seed: int,
                          latest_s: float) -> int | None:
    """Start `command`, SIGKILL it after a seeded random delay; None if it finished first."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(process.wait(), timeout=random.Random(seed).uniform(0.2, latest_s))
        return process.returncode
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        await process.wait()
        return None


async def _wait_for_orphans(url: str, application: str = "") -> None:
    """A killed client's server session ends on its own; wait until it has (and rolled back)."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + 30
        while await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"):
            assert time.monotonic() < deadline, "a killed client's session did not end"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VAXVAULT), "backup", "verify"], env=env, capture_output=True,
                          text=True, check=False)


@pytest.mark.parametrize("seed", [11, 12])
async def test_kill_9_of_a_restore_leaves_nothing_or_everything(
        database_url: str, tmp_path: Path, seed: int) -> None:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)
    as_of, incident = await _incident(config)
    env = _env(config, tmp_path)
    command = [str(VAXVAULT), "restore", "records", "--as-of", as_of.isoformat(), "--table", "doses",
               "--where", _where(incident)]
    finished = await _kill_at_random(command, env, seed, latest_s=3.0)
    await _wait_for_orphans(database_url)
    state = await _state(database_url, incident)
    assert state == ("restored" if finished == 0 else state)
    assert state in ("damaged", "restored"), f"half a restore after kill -9 (seed {seed})"
    assert await _restore_audits(database_url) == (1 if state == "restored" else 0)
    # The operator runs it again: it completes (or finds nothing left to do).
    request = RestoreRequest(table="doses", as_of=as_of, where=parse(_where(incident)),
                             actor="reliability")
    await restore_records(database_url, open_repository(config.primary_url or ""), None, request)
    assert await _state(database_url, incident) == "restored"
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("seed", [21, 22])
async def test_kill_9_of_a_backup_keeps_the_repository_valid(
        seeded_database_url: str, tmp_path: Path, seed: int) -> None:
    config = BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=100)
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn)
    finally:
        await conn.close()
    await run_backup(config, full=True)
    env = _env(config, tmp_path)
    await _kill_at_random([str(VAXVAULT), "backup", "run", "--full"], env, seed, latest_s=2.5)
    await _wait_for_orphans(seeded_database_url)
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rerun = subprocess.run([str(VAXVAULT), "backup", "run", "--full"], env=env, capture_output=True,
                           text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    checked = _verify(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
