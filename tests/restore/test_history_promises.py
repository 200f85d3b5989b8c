"""README promises about restore's history: the live change log counts like shipped segments.

- A row changed legitimately after the last shipment (so only the live change log knows it) is a
  conflict under the default --on-conflict skip, not overwritten.
- A live log that still holds changes already shipped (the trim did not run) gives the same
  restore as a trimmed one: nothing applied twice.
- find-loss sees damage that has not been shipped yet.
- A restore's own writes are captured like any other write, and ship with the next run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from api.cli import main
from api.domain import restore_admin
from api.domain.restore_admin import Source
from backup.config import BackupConfig
from backup.restore.errors import RestorePlanError
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, restore_records
from backup.restore.source import load_history
from backup.runner import run_backup
from backup.storage.repository import open_repository
from tests.restore.scenario import Incident, database_now, doses_now, prepare, scenario_config, strike
from tests.sockets import refusing_port

pytestmark = pytest.mark.slow


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> BackupConfig:
    return scenario_config(database_url, tmp_path)


async def _execute(url: str, sql: str, *args: object) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.execute(sql, *args))
    finally:
        await conn.close()


async def _ship_to_primary_only(config: BackupConfig, tmp_path: Path) -> None:
    """An incremental with a replica that cannot be written: the segment reaches the primary, the
    run fails, and the live change log is not trimmed, so it still holds every change shipped."""
    (tmp_path / "not-a-directory").write_text("")
    broken = BackupConfig(database_url=config.database_url, spool_dir=config.spool_dir,
                          primary_url=config.primary_url,
                          replica_urls=((tmp_path / "not-a-directory" / "replica").as_uri(),),
                          chunk_rows=config.chunk_rows)
    with pytest.raises(Exception, match="replica"):
        await run_backup(broken, full=False)


def _request(incident: Incident, as_of: datetime) -> RestoreRequest:
    return RestoreRequest(table="doses", as_of=as_of, actor="history-promises", where=parse(
        f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1"))


async def test_a_change_known_only_to_the_live_log_is_a_conflict_and_skipped(
        config: BackupConfig) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await run_backup(config, full=False)  # the damage is shipped
    # A nurse fixes one damaged dose by hand after the last shipment: only the live log has it.
    fixed_by_hand = sorted(incident.nulled - {incident.lot_fixed})[0]
    await _execute(config.database_url, "UPDATE doses SET lot_number = 'BY-HAND' WHERE id = $1",
                   fixed_by_hand)
    report = await restore_records(config.database_url, open_repository(config.primary_url or ""),
                                   None, _request(incident, as_of))
    assert report.plan.used_live_log
    conflicts = {c.key["id"] for c in report.plan.conflicts}
    assert conflicts == {incident.lot_fixed, fixed_by_hand}
    now = await doses_now(config.database_url, {fixed_by_hand})
    assert now[fixed_by_hand]["lot_number"] == "BY-HAND" and now[fixed_by_hand]["administered_on"] is None
    assert report.restored == len(incident.damaged) - 2


async def test_a_live_log_overlapping_shipped_segments_is_applied_once(
        config: BackupConfig, tmp_path: Path) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await _ship_to_primary_only(config, tmp_path)
    overlap = await _execute(config.database_url, "SELECT 1 FROM vaxvault_backup.changes")
    assert overlap != "SELECT 0", "the live log was trimmed; the overlap this test needs is gone"
    report = await restore_records(config.database_url, open_repository(config.primary_url or ""),
                                   None, _request(incident, as_of))
    assert {c.key["id"] for c in report.plan.conflicts} == {incident.lot_fixed}
    assert report.restored == len(incident.damaged) - 1
    now = await doses_now(config.database_url, incident.damaged)
    assert {i: r for i, r in now.items() if i != incident.lot_fixed} == {
        i: incident.before[i] for i in incident.damaged if i != incident.lot_fixed}


async def _find_loss(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     config: BackupConfig, tmp_path: Path, database_url: str) -> tuple[dict, str]:
    """`vaxvault restore find-loss --table doses --json`: its JSON and its standard error."""
    for name in ("VAXVAULT_BACKUP_REPLICA_URLS", "VAXVAULT_BACKUP_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", database_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", config.primary_url or "")
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    # The CLI runs its own event loop, so not on this test's.
    assert await asyncio.to_thread(main, ["restore", "find-loss", "--table", "doses", "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def _nulled_window(found: dict) -> dict:
    nulled = [w for w in found["windows"] if w["signal"] == "update administered_on"]
    assert len(nulled) == 1, found["windows"]
    return nulled[0]


async def test_find_loss_sees_damage_not_yet_shipped(config: BackupConfig, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await prepare(config)
    incident = await strike(config)  # not shipped: only the live change log holds it
    found, err = await _find_loss(monkeypatch, capsys, config, tmp_path, config.database_url)
    assert _nulled_window(found)["count"] == len(incident.nulled)
    # The strike's changes and the legitimate work after it, none in a segment yet.
    assert found["unshipped_changes"] >= len(incident.damaged)
    assert found["warnings"] == [] and err == ""


async def test_find_loss_counts_a_change_in_the_live_log_and_a_segment_once(
        config: BackupConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    await prepare(config)
    incident = await strike(config)
    await _ship_to_primary_only(config, tmp_path)  # every change in a segment AND the live log
    found, _ = await _find_loss(monkeypatch, capsys, config, tmp_path, config.database_url)
    assert _nulled_window(found)["count"] == len(incident.nulled)
    assert found["unshipped_changes"] == 0


async def test_find_loss_without_the_database_answers_from_segments_and_says_so(
        config: BackupConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    await prepare(config)
    incident = await strike(config)
    await run_backup(config, full=False)  # shipped; then the database server is lost
    with refusing_port() as port:
        found, err = await _find_loss(monkeypatch, capsys, config, tmp_path,
                                f"postgresql://postgres@127.0.0.1:{port}/gone")
    assert _nulled_window(found)["count"] == len(incident.nulled)
    assert found["unshipped_changes"] == 0
    assert len(found["warnings"]) == 1 and "live change log could not be read" in found["warnings"][0]
    assert "vaxvault: warning: the live change log could not be read" in err


async def test_a_restore_is_captured_and_ships_like_any_other_write(config: BackupConfig) -> None:
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await run_backup(config, full=False)
    report = await restore_records(config.database_url, open_repository(config.primary_url or ""),
                                   None, _request(incident, as_of))
    conn = await asyncpg.connect(config.database_url)
    try:
        captured = {(r["op"], r["id"]) for r in await conn.fetch(
            "SELECT op::text AS op, (key->>'id')::bigint AS id "
            "FROM vaxvault_backup.changes WHERE table_name = 'doses'")}
    finally:
        await conn.close()
    restored = incident.damaged - {incident.lot_fixed}
    assert report.restored == len(restored)
    assert {i for _, i in captured} == set(restored)
    assert {op for op, i in captured if i in incident.deleted} == {"I"}
    assert {op for op, i in captured if i in incident.nulled} == {"U"}
    shipped = await run_backup(config, full=False)
    assert shipped.changes == len(restored)


async def test_the_graphql_pre_check_accepts_a_hole_the_live_log_covers(
        config: BackupConfig, tmp_path: Path) -> None:
    """A segment lost from the primary while the live log still holds its changes: the restore
    rebuilds T from the log, so the admin pre-check must not refuse it (it read only the
    repository and did)."""
    await prepare(config)
    as_of = await database_now(config.database_url)
    incident = await strike(config)
    await _ship_to_primary_only(config, tmp_path)  # segment B: primary only, log not trimmed
    lost = {p.name for p in (tmp_path / "primary" / "segments").iterdir()}
    await _execute(config.database_url, "UPDATE centers SET name = name || ' ' WHERE id = 1")
    with pytest.raises(Exception, match="replica"):  # segment C after B, same broken replica
        await run_backup(BackupConfig(
            database_url=config.database_url, spool_dir=config.spool_dir,
            primary_url=config.primary_url, chunk_rows=config.chunk_rows,
            replica_urls=((tmp_path / "not-a-directory" / "replica").as_uri(),)), full=False)
    segments = sorted(p.name for p in (tmp_path / "primary" / "segments").iterdir())
    hole = max(lost)  # B: the newest segment of the first broken run
    assert hole in segments and segments[-1] > hole, segments
    shutil.rmtree(tmp_path / "primary" / "segments" / hole)
    repo = open_repository(config.primary_url or "")
    request = _request(incident, as_of)
    with pytest.raises(RestorePlanError, match="a segment is missing"):
        load_history(repo, request.as_of)  # the repository alone has a hole before T
    found = Source(config.database_url, repo, None)
    assert await restore_admin.check_history(found, request) is None
    report = await restore_records(config.database_url, repo, None, request)
    assert report.plan.used_live_log and report.restored == len(incident.damaged) - 1
