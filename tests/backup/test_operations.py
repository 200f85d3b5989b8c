"""verify, prune, list and the format version, through the `vaxvault backup` entry point."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.cli import main
from backup.config import BackupConfig
from backup.errors import ConfigError, FormatError
from backup.prune import Unit, plan_prune
from backup.runner import run_backup
from backup.storage import keys, manifest
from tests.backup.conftest import install_capture


@pytest.fixture
def cli_env(file_config: BackupConfig, monkeypatch: pytest.MonkeyPatch) -> BackupConfig:
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", file_config.database_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", file_config.primary_url or "")
    monkeypatch.setenv("VAXVAULT_BACKUP_REPLICA_URLS", ",".join(file_config.replica_urls))
    monkeypatch.setenv("VAXVAULT_BACKUP_SPOOL_DIR", str(file_config.spool_dir))
    return file_config


def _path(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def test_cli_init_run_list_verify_and_detect_damage(cli_env: BackupConfig,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "init", "--json"]) == 0
    assert "doses" in json.loads(capsys.readouterr().out)["tables"]
    assert main(["backup", "run", "--full", "--json", "--workers", "3", "--chunk-rows", "1000"]) == 0
    snapshot_id = json.loads(capsys.readouterr().out)["snapshot_id"]
    assert main(["backup", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    [unit] = listed["units"]
    assert listed["total_units"] == 1 and listed["stages"][1]["newest_snapshot"] == snapshot_id
    assert unit["id"] == snapshot_id
    assert unit["states"] == {"spool": "-", "primary": "stored", "replica-1": "stored"}
    assert main(["backup", "verify", "--deep"]) == 0
    assert "at every stage (deep)" in capsys.readouterr().out

    chunk = _path(cli_env.replica_urls[0]) / keys.format_chunk_key(snapshot_id, "recipients", 0)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    schema = _path(cli_env.primary_url or "") / keys.format_schema_key(snapshot_id)
    schema.unlink()
    assert main(["backup", "verify", snapshot_id]) == 1
    out, err = capsys.readouterr()
    assert f"replica-1 {cli_env.replica_urls[0]}: {keys.format_chunk_key(snapshot_id, 'recipients', 0)}: " \
           "SHA-256 mismatch" in out
    assert f"primary {cli_env.primary_url}: {keys.format_schema_key(snapshot_id)}: missing" in out
    assert err.startswith("vaxvault: verify found 2 problem(s)") and err.count("\n") == 1
    assert main(["backup", "verify", "20990101T000000000000Z"]) == 1
    assert "no committed snapshot or segment" in capsys.readouterr().err


def test_cli_refuses_a_run_without_a_primary(cli_env: BackupConfig, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("VAXVAULT_BACKUP_URL")
    assert main(["backup", "run"]) == 1
    assert "set VAXVAULT_BACKUP_URL" in capsys.readouterr().err
    assert main(["backup", "schedule", "--full", "every day"]) == 1
    assert "'every day' is not a cron expression" in capsys.readouterr().err
    # Without the flag, the setting the API also reads (to show the next runs) is the schedule.
    monkeypatch.setenv("VAXVAULT_BACKUP_SCHEDULE_INCREMENTAL", "every hour")
    assert main(["backup", "schedule"]) == 1
    assert "'every hour' is not a cron expression" in capsys.readouterr().err


def _unit(kind: str, days_ago: float, now: datetime) -> Unit:
    at = now - timedelta(days=days_ago)
    return Unit(kind, keys.format_id(at), at)


def test_prune_plan_keeps_every_point_in_time_of_the_window() -> None:
    now = datetime(2026, 11, 22, 3, tzinfo=UTC)
    snapshots = [_unit("snapshot", d, now) for d in (20, 10, 6, 3, 1)]
    segments = [_unit("segment", d, now) for d in (15, 9, 6, 5, 2, 0.5)]
    plan = plan_prune(snapshots + segments, keep_full=1, keep_days=4, now=now)
    # Window starts 4 days ago: the 6-day snapshot is its base, so it and what follows stay.
    assert plan.snapshots == (snapshots[0].id, snapshots[1].id)
    assert plan.segments == (segments[0].id, segments[1].id, segments[2].id)
    assert plan_prune(snapshots + segments, keep_full=5, keep_days=0, now=now).snapshots == ()
    only_newest = plan_prune(snapshots + segments, keep_full=1, keep_days=0, now=now)
    assert only_newest.snapshots == tuple(s.id for s in snapshots[:4])
    assert only_newest.segments == tuple(s.id for s in segments[:5])
    assert plan_prune(segments, keep_full=1, keep_days=0, now=now).segments == ()
    with pytest.raises(ConfigError, match="--keep-full 0"):
        plan_prune(snapshots, keep_full=0, keep_days=1, now=now)


async def test_prune_dry_run_lists_and_real_run_deletes_at_every_stage(
        cli_env: BackupConfig, capsys: pytest.CaptureFixture[str]) -> None:
    await install_capture(cli_env.database_url)
    first = await run_backup(cli_env, full=True)
    second = await run_backup(cli_env, full=True)
    # The CLI runs its own event loop (prune takes the backup lock): call it off this test's loop.
    assert await asyncio.to_thread(main, ["backup", "prune", "--keep-full", "1", "--keep-days", "0",
                                          "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete 1 snapshot(s) and 0 segment(s)\n  snapshot {first.snapshot_id}" in out
    primary = _path(cli_env.primary_url or "")
    assert (primary / keys.format_snapshot_manifest_key(first.snapshot_id or "")).exists()
    assert await asyncio.to_thread(main, ["backup", "prune", "--keep-full", "1", "--keep-days", "0"]) == 0
    assert "at primary: 1 snapshot(s), 0 segment(s)" in capsys.readouterr().out
    for url in (cli_env.primary_url or "", *cli_env.replica_urls):
        assert sorted(p.name for p in (_path(url) / "snapshots").iterdir()) == [second.snapshot_id]
    assert main(["backup", "verify", "--deep"]) == 0


def test_a_newer_major_format_is_refused_with_a_clear_error() -> None:
    data = json.dumps({"format_version": "3.0", "kind": "snapshot"}).encode()
    with pytest.raises(FormatError, match=r"format 3\.0, newer than this vaxvault reads \(2\.1\); upgrade"):
        manifest.load(data, "s3://b/snapshots/x/manifest.json")
    with pytest.raises(FormatError, match="not valid JSON"):
        manifest.load(b"{", "x")


def test_run_before_init_says_what_to_do(cli_env: BackupConfig, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "list"]) == 0
    assert "no snapshots or segments yet" in capsys.readouterr().out
    assert main(["backup", "run", "--incremental"]) == 1
    err = capsys.readouterr().err
    assert "change capture is not installed" in err and "vaxvault backup init" in err and err.count("\n") == 1
    assert main(["backup", "run", "--full", "--incremental"]) == 2
    assert main(["backup", "run", "--chunk-rows", "0"]) == 2
    assert "'0' must be at least 1" in capsys.readouterr().err
