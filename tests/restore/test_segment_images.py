"""Segments of format 2.1 carry each table's changes as typed rows (images); restore loads those
instead of parsing the JSON lines. Repositories of format 2.0 (JSON lines only) and repositories
mixing both must restore exactly as before: the same plan, the same rows back."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from backup.config import BackupConfig
from backup.restore.changes import _window
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, plan_restore, restore_records
from backup.runner import run_backup
from backup.stages import build_stages
from backup.storage.file import FileRepository
from backup.storage.reader import list_segments
from backup.storage.repository import open_repository
from backup.verify import verify
from tests.restore.old_format import as_format_2_0
from tests.restore.scenario import database_now, doses_now, prepare, scenario_config, strike

pytestmark = pytest.mark.slow


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> BackupConfig:
    return scenario_config(database_url, tmp_path)


def _copy(config: BackupConfig, tmp_path: Path, name: str) -> FileRepository:
    source = Path((config.primary_url or "").removeprefix("file://"))
    target = tmp_path / name
    shutil.copytree(source, target)
    return FileRepository(target)


async def test_old_new_and_mixed_segments_plan_and_restore_the_same(config: BackupConfig,
                                                                    tmp_path: Path) -> None:
    await prepare(config)  # full, work, incremental: the first segment, replayed up to T
    conn = await asyncpg.connect(config.database_url)
    try:  # legitimate work just before T, shipped in the same segment as the damage after it
        await conn.execute("UPDATE doses SET next_due_on = administered_on + 90 "
                           "WHERE dose_number = 1 AND id % 3 = 0")
    finally:
        await conn.close()
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await run_backup(config, full=False)  # the second segment: read up to T and after T
    new = open_repository(config.primary_url or "")
    segments = list_segments(new)
    assert len(segments) == 2 and all(s.image("doses") is not None for s in segments)
    assert all(s.format_version == "2.1" for s in segments)
    old = _copy(config, tmp_path, "old")
    assert as_format_2_0(old, None) == 2
    assert all(not s.images for s in list_segments(old))
    mixed = _copy(config, tmp_path, "mixed")
    assert as_format_2_0(mixed, None, {segments[1].id}) == 1  # after T from JSON, up to T typed
    mixed_other = _copy(config, tmp_path, "mixed_other")
    assert as_format_2_0(mixed_other, None, {segments[0].id}) == 1
    request = RestoreRequest(table="doses", as_of=as_of,
                             where=parse(f"administered_on = '{incident.day.isoformat()}'"))
    plans = [await plan_restore(config.database_url, repo, None, request)
             for repo in (new, old, mixed, mixed_other)]
    assert plans[0].counts["write_back"] > 0 and plans[0].counts["reinsert"] > 0
    assert plans[0].counts["conflict"] == 1  # the lot number fixed after the incident
    assert all(plan == plans[0] for plan in plans[1:])
    report = await restore_records(config.database_url, old, None, request)
    assert report.restored == len(incident.nulled) + len(incident.deleted) - 1
    restored = (incident.nulled | incident.deleted) - {incident.lot_fixed}
    assert await doses_now(config.database_url, restored) == {i: incident.before[i] for i in restored}


async def test_a_column_added_after_the_snapshot_is_carried_by_images_and_left_out(
        config: BackupConfig, tmp_path: Path) -> None:
    await prepare(config)
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute("ALTER TABLE doses ADD COLUMN remark text DEFAULT 'x'")
        as_of = await database_now(config.database_url)
        lost = [r["id"] for r in await conn.fetch("DELETE FROM doses WHERE id % 7 = 3 RETURNING id")]
        await conn.execute("UPDATE doses SET lot_number = 'BROKEN', remark = 'y' WHERE id % 7 = 4")
    finally:
        await conn.close()
    await run_backup(config, full=False)
    new = open_repository(config.primary_url or "")
    image = list_segments(new)[-1].image("doses")
    assert image is not None and "remark" in [c.name for c in image.columns]
    old = _copy(config, tmp_path, "old")
    as_format_2_0(old, None)
    request = RestoreRequest(table="doses", as_of=as_of)
    plan = await plan_restore(config.database_url, new, None, request)
    assert plan == await plan_restore(config.database_url, old, None, request)
    report = await restore_records(config.database_url, new, None, request)
    assert report.reinserted == len(lost) and report.written_back > 0
    conn = await asyncpg.connect(config.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM doses WHERE lot_number = 'BROKEN'") == 0
    finally:
        await conn.close()


async def test_verify_checks_images_like_any_object(config: BackupConfig, tmp_path: Path) -> None:
    await prepare(config)
    stages = build_stages(FileRepository(config.spool_dir), config.primary_url, (), None)
    report = verify(stages, deep=True)
    assert not report.problems
    segment = list_segments(open_repository(config.primary_url or ""))[-1]
    image = segment.image("doses")
    assert image is not None and image.rows > 0
    primary = Path((config.primary_url or "").removeprefix("file://"))
    (primary / image.object.key).unlink()
    problems = verify(stages, deep=True).problems
    assert [(p.key, p.reason) for p in problems] == [(image.object.key, "missing")]


def test_a_naive_time_bounds_the_image_window_as_utc() -> None:
    """The typed-image path writes its time window into COPY as text: a naive bound must mean
    UTC there, as it does for the JSON path's parameters, whatever the session's time zone."""
    naive = datetime(2026, 12, 1, 12, 0)
    assert _window(naive, naive) == _window(naive.replace(tzinfo=UTC), naive.replace(tzinfo=UTC))
    assert "+00:00" in (_window(naive, None) or "")
