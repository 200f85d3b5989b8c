"""One history: shipped segments, then the live change log, for the rows at T and after T alike.

The sequence an operator meets most often: a full backup, legitimate corrections, no incremental
run yet, the incident, and a restore at once (the live log still holds everything).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.errors import StorageError
from backup.restore.errors import RestorePlanError
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, plan_restore, restore_in_transaction, restore_records
from backup.restore.source import open_history
from backup.runner import run_backup
from backup.storage.repository import open_repository

pytestmark = pytest.mark.slow


@pytest.fixture
def config(seeded_database_url: str, tmp_path: Path) -> BackupConfig:
    return BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                        primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)


async def _fetch_images(conn: asyncpg.Connection, where: str, *args: object) -> dict[int, dict]:
    rows = await conn.fetch(f"SELECT id, to_jsonb(d)::text AS image FROM doses d WHERE {where}", *args)
    return {row["id"]: json.loads(row["image"]) for row in rows}


async def _busiest_day(conn: asyncpg.Connection) -> object:
    return await conn.fetchval(
        "SELECT administered_on FROM doses WHERE dose_number = 1 AND administered_on IS NOT NULL "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")


async def _work_before_t(conn: asyncpg.Connection, day: object) -> tuple[list[int], int]:
    """Two lot-number corrections on the day's dose-1 rows and one dose 1 recorded that day."""
    fixed = [r["id"] for r in await conn.fetch(
        "UPDATE doses SET lot_number = 'CORRECTED-' || id WHERE id IN (SELECT id FROM doses WHERE "
        "dose_number = 1 AND administered_on = $1 ORDER BY id LIMIT 2) RETURNING id", day)]
    added = await conn.fetchval(
        "INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number, administered_on, "
        "center_id, recorded_by) SELECT r.id, 1, 'BNT162B2', 'ADDED', $1, r.center_id, 'staff' "
        "FROM recipients r WHERE NOT EXISTS (SELECT 1 FROM doses d WHERE d.recipient_id = r.id) "
        "ORDER BY r.id LIMIT 1 RETURNING id", day)
    return fixed, added


async def test_restore_at_once_after_the_incident_keeps_corrections_and_unshipped_rows(
        config: BackupConfig) -> None:
    conn = await asyncpg.connect(config.database_url)
    try:
        await install(conn)
        await run_backup(config, full=True)
        day = await _busiest_day(conn)
        fixed, added = await _work_before_t(conn, day)
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
        before = await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day)
        assert added in before and all(before[i]["lot_number"].startswith("CORRECTED-") for i in fixed)
        await conn.execute("DELETE FROM doses WHERE dose_number = 1 AND administered_on = $1", day)
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    where = parse(f"administered_on = '{day}' AND dose_number = 1")
    request = RestoreRequest(table="doses", as_of=as_of, where=where)
    plan = await plan_restore(config.database_url, repo, None, request)
    assert plan.used_live_log and plan.segments == 0 and plan.warnings == ()
    assert plan.counts["reinsert"] == len(before) and plan.conflicts_total == 0
    report = await restore_records(config.database_url, repo, None, request)
    assert report.reinserted == len(before)
    conn = await asyncpg.connect(config.database_url)
    try:
        after = await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day)
    finally:
        await conn.close()
    assert after == before
    again = await restore_records(config.database_url, repo, None, request)
    assert again.restored == 0


async def _run_backup_between(config: BackupConfig, at: str,
                              step: Callable[[], Awaitable[object]]) -> None:
    """Restore with a backup run that ships segments and trims the live log at `at`: after the
    restore's snapshot but before it lists the repository, or after both."""
    conn = await asyncpg.connect(config.database_url)
    try:
        await install(conn)
        await run_backup(config, full=True)
        day = await _busiest_day(conn)
        await _work_before_t(conn, day)
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
        before = await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day)
        await conn.execute("DELETE FROM doses WHERE dose_number = 1 AND administered_on = $1", day)
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    request = RestoreRequest(table="doses", as_of=as_of,
                             where=parse(f"administered_on = '{day}' AND dose_number = 1"))
    conn = await asyncpg.connect(config.database_url)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            if at == "before listing":
                await conn.fetchval("SELECT 1")  # the restore's snapshot is taken here
                await step()
            history = await open_history(conn, repo, None, as_of, use_live_log=True)
            if at == "after listing":
                await step()
            report = await restore_in_transaction(conn, repo, None, history, request, apply=True)
        assert report.reinserted == len(before)
        after = await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day)
    finally:
        await conn.close()
    assert after == before


@pytest.mark.parametrize("at", ["before listing", "after listing"])
async def test_a_backup_that_ships_and_trims_meanwhile_hides_nothing(config: BackupConfig, at: str) -> None:
    async def ship_and_trim() -> None:
        summary = await run_backup(config, full=False)
        assert summary.trimmed > 0  # what the restore reads from the log is gone for later readers

    await _run_backup_between(config, at, ship_and_trim)


async def test_a_hole_before_t_is_refused_and_names_the_window(config: BackupConfig) -> None:
    """Segments shipped and trimmed from the log, then lost from the repository: the changes
    between the snapshot and T are in neither source."""
    conn = await asyncpg.connect(config.database_url)
    try:
        await install(conn)
        await run_backup(config, full=True)
        await conn.execute("UPDATE doses SET lot_number = 'X' WHERE id = 1")
        summary = await run_backup(config, full=False)
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    assert summary.segment_id is not None
    for info in repo.list(f"segments/{summary.segment_id}/"):
        repo.delete(info.key)
    with pytest.raises(RestorePlanError, match=r"changes after .* are in no segment .* trimmed from the "
                                               r"live change log.*choose --as-of at or before"):
        await plan_restore(config.database_url, repo, None, RestoreRequest(table="doses", as_of=as_of))


async def test_a_stage_down_at_the_last_run_is_no_hole(config: BackupConfig, tmp_path: Path) -> None:
    """The last run cut a segment but could not store it at the primary: the segment waits in the
    spool and the live log keeps its changes, so a restore from the primary is complete."""
    conn = await asyncpg.connect(config.database_url)
    try:
        await install(conn)
        await run_backup(config, full=True)
        day = await _busiest_day(conn)
        await _work_before_t(conn, day)
        (tmp_path / "gone").write_text("not a directory")
        with pytest.raises(StorageError, match="kept in the spool"):
            await run_backup(replace(config, primary_url=(tmp_path / "gone" / "p").as_uri()), full=False)
        await conn.execute("UPDATE doses SET lot_number = 'AFTER-DOWN' WHERE id = (SELECT min(id) FROM "
                           "doses WHERE dose_number = 1 AND administered_on = $1)", day)
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
        before = await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day)
        await conn.execute("DELETE FROM doses WHERE dose_number = 1 AND administered_on = $1", day)
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    request = RestoreRequest(table="doses", as_of=as_of,
                             where=parse(f"administered_on = '{day}' AND dose_number = 1"))
    report = await restore_records(config.database_url, repo, None, request)
    assert report.plan.warnings == () and report.reinserted == len(before)
    conn = await asyncpg.connect(config.database_url)
    try:
        assert await _fetch_images(conn, "dose_number = 1 AND administered_on = $1", day) == before
    finally:
        await conn.close()
