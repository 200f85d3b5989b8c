"""The admin operations the console's extras stand on: a restore job's progress, the backup
schedule beside what the stages hold, and verifyBackups per stage.

Real PostgreSQL and a real file:// repository, as in test_admin_ops. The progress test holds the
restore at a known step with a PostgreSQL lock (a barrier), not with the clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from api.domain.backup_schedule import schedule_report
from api.settings import Settings
from backup.capture.triggers import install
from backup.inventory import PENDING, STORED, UnitState
from backup.schedule import Schedule
from backup.storage.keys import format_id
from tests.api.client import run
from tests.api.conftest import Cast
from tests.api.test_admin_ops import RESTORE, _backup, _damage, _data, _input

pytestmark = pytest.mark.slow

JOB = """query Job($id: ID!) { restoreJob(id: $id) { status progress fraction restored error } }"""
BACKUPS = """{ backups { configured scheduleProblem schedule { nextKind nextAt
  full { kind cron lastDue nextDue late newest { stage id at } }
  incremental { kind cron lastDue nextDue late newest { stage id at } } } } }"""
VERIFY = """mutation Verify($deep: Boolean!, $id: String) { verifyBackups(deep: $deep, id: $id) {
  __typename ... on BackupVerification { ok deep id stages { stage units objects ok
    problems { key reason } } }
  ... on BackupNotConfigured { message } ... on OperationFailed { message } } }"""


@pytest.fixture
def admin_settings(seeded_settings: Settings, tmp_path: Path) -> Settings:
    return seeded_settings.with_overrides(backup_url=(tmp_path / "primary").as_uri(),
                                          backup_spool_dir=tmp_path / "spool",
                                          backup_schedule_full="0 0 1 1 *",
                                          backup_schedule_incremental="*/5 * * * *")


@pytest.fixture
async def captured(owner: asyncpg.Connection) -> asyncpg.Connection:
    await install(owner)
    return owner


async def _job(pool: asyncpg.Pool, settings: Settings, cast: Cast, job_id: str) -> dict[str, Any]:
    return dict(_data(await run(pool, settings, cast.admin, JOB, {"id": job_id}))["restoreJob"])


async def test_a_restore_jobs_fraction_moves_with_its_steps_and_ends_at_one(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection) -> None:
    await _backup(pool, admin_settings, cast, "FULL")
    as_of, _, _ = await _damage(captured)
    # The barrier: a SHARE lock lets the restore read doses but not write them, so it stops at
    # the step that writes, with every step before it behind it.
    barrier = await asyncpg.connect(admin_settings.database_url)
    hold = barrier.transaction()
    await hold.start()
    await barrier.execute("LOCK TABLE doses IN SHARE MODE")
    try:
        started = _data(await run(pool, admin_settings, cast.admin, RESTORE,
                                  {"input": _input(as_of)}))["restoreRecords"]
        seen = [await _job(pool, admin_settings, cast, started["id"])]
        for _ in range(1200):  # polled, not timed: the lock holds the job at the write step
            if "writing the restored rows" in seen[-1]["progress"]:
                break
            await asyncio.sleep(0.05)
            seen.append(await _job(pool, admin_settings, cast, started["id"]))
        held = seen[-1]
        assert held["status"] == "RUNNING", seen
        assert held["progress"].startswith("step 5 of 6: writing the restored rows"), held
        assert 0 < held["fraction"] < 1 and held["restored"] is None
    finally:
        await hold.rollback()
        await barrier.close()
    for _ in range(1200):
        seen.append(await _job(pool, admin_settings, cast, started["id"]))
        if seen[-1]["status"] in ("SUCCEEDED", "FAILED"):
            break
        await asyncio.sleep(0.05)
    done = seen[-1]
    assert done["status"] == "SUCCEEDED" and done["fraction"] == 1 and done["restored"] > 0, done
    fractions = [s["fraction"] for s in seen]
    assert fractions == sorted(fractions)  # never goes back


def _unit(kind: str, at: datetime, **states: str) -> UnitState:
    return UnitState(kind, format_id(at), 1, 1, dict(states))


def test_schedule_report_last_and_next_runs_and_a_missed_full_run() -> None:
    now = datetime(2026, 11, 22, 3, 7, tzinfo=UTC)
    schedule = Schedule(full="0 2 * * *", incremental="*/5 * * * *")
    stages = ("spool", "primary", "replica-1")
    made = datetime(2026, 11, 22, 2, 0, 1, tzinfo=UTC)
    units = (_unit("snapshot", made - timedelta(days=1), spool="-", primary=STORED,
                   **{"replica-1": STORED}),
             _unit("snapshot", made, spool="-", primary=STORED, **{"replica-1": "missing"}),
             _unit("segment", datetime(2026, 11, 22, 3, 5, 2, tzinfo=UTC), spool=PENDING,
                   primary="missing", **{"replica-1": "missing"}))
    found = schedule_report(schedule, units, stages, now)
    assert (found.next_kind, found.next_at) == ("incremental", datetime(2026, 11, 22, 3, 10,
                                                                        tzinfo=UTC))
    assert found.full.last_due == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    assert found.full.next_due == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert [(n.stage, n.at) for n in found.full.newest] == [
        ("spool", None), ("primary", made), ("replica-1", made - timedelta(days=1))]
    assert found.full.late is None
    assert [(n.stage, n.at is not None) for n in found.incremental.newest] == [
        ("spool", True), ("primary", False), ("replica-1", False)]
    assert found.incremental.late is None  # an idle registry ships no segment: nothing inferred

    # The next day, the 02:00 full run has left nothing in the primary repository.
    later = schedule_report(schedule, units, stages, now + timedelta(days=1))
    assert later.full.late is not None
    assert "2026-11-23T02:00:00+00:00 is not in the primary repository" in later.full.late
    assert "start a full backup" in later.full.late
    empty = schedule_report(schedule, (), stages, now)
    assert empty.full.late is not None and "it holds no snapshot" in empty.full.late


async def test_backups_show_the_schedule_and_a_bad_setting_as_a_sentence(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection) -> None:
    full = await _backup(pool, admin_settings, cast, "FULL")
    listing = _data(await run(pool, admin_settings, cast.admin, BACKUPS))["backups"]
    schedule = listing["schedule"]
    assert listing["scheduleProblem"] is None
    assert schedule["full"]["cron"] == "0 0 1 1 *" and schedule["incremental"]["cron"] == \
        "*/5 * * * *"
    assert schedule["nextKind"] == "INCREMENTAL" and schedule["full"]["late"] is None
    assert {n["stage"]: n["id"] for n in schedule["full"]["newest"]} == {
        "spool": None, "primary": full["snapshotId"]}

    broken = admin_settings.with_overrides(backup_schedule_full="every night")
    listing = _data(await run(pool, broken, cast.admin, BACKUPS))["backups"]
    assert listing["schedule"] is None and listing["configured"]
    assert listing["scheduleProblem"].startswith(
        "VAXVAULT_BACKUP_SCHEDULE_FULL 'every night' is not a cron expression")


async def test_verify_backups_says_per_stage_which_object_failed(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection, tmp_path: Path) -> None:
    full = await _backup(pool, admin_settings, cast, "FULL")
    sound = _data(await run(pool, admin_settings, cast.admin, VERIFY,
                            {"deep": True}))["verifyBackups"]
    assert sound["__typename"] == "BackupVerification" and sound["ok"] and sound["deep"]
    primary = {s["stage"]: s for s in sound["stages"]}["primary"]
    assert primary["units"] >= 1 and primary["objects"] >= 4 and primary["problems"] == []

    chunk = next(p for p in sorted((tmp_path / "primary").rglob("*.zst")) if p.is_file())
    chunk.write_bytes(b"not what was stored" + chunk.read_bytes()[19:])
    broken = _data(await run(pool, admin_settings, cast.admin, VERIFY,
                             {"deep": False, "id": full["snapshotId"]}))["verifyBackups"]
    assert broken["ok"] is False and broken["id"] == full["snapshotId"]
    stages = {s["stage"]: s for s in broken["stages"]}
    assert stages["spool"]["ok"] and stages["spool"]["units"] == 0
    [problem] = stages["primary"]["problems"]
    assert problem["key"] == chunk.relative_to(tmp_path / "primary").as_posix()
    assert problem["reason"] == "SHA-256 mismatch (corrupted)"

    unknown = await run(pool, admin_settings, cast.admin, VERIFY,
                        {"deep": False, "id": "20200101T000000000000Z"})
    assert unknown.codes() == {"verifyBackups": "BAD_USER_INPUT"}
    assert "no committed snapshot or segment" in unknown.errors[0]["message"]
    audit = await captured.fetch("SELECT detail->>'outcome' AS outcome FROM audit_log "
                                 "WHERE detail->>'operation' = 'verifyBackups' ORDER BY id")
    assert [r["outcome"] for r in audit] == ["ok", "problems", "refused"]
