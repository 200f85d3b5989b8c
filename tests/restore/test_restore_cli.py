"""`vaxvault restore ...` through its entry point, on a real registry and a file:// repository."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import asyncpg
import pytest

from api.cli import main
from backup.config import BackupConfig
from backup.runner import run_backup
from tests.restore.scenario import Incident, doses_now, prepare, strike

pytestmark = pytest.mark.slow


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> BackupConfig:
    return BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                        primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config: BackupConfig) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("VAXVAULT_") and not name.startswith("VAXVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", config.database_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", config.primary_url or "")
    return monkeypatch


async def _incident(config: BackupConfig) -> Incident:
    await prepare(config)
    incident = await strike(config)
    await run_backup(config, full=False)
    return incident


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_find_loss_dry_run_restore_columns_and_full(env: pytest.MonkeyPatch, config: BackupConfig,
                                                    empty_database_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    incident = asyncio.run(_incident(config))
    code, out, _ = _run(capsys, "restore", "find-loss", "--table", "doses", "--json")
    assert code == 0
    windows = json.loads(out)["windows"]
    as_of = windows[0]["proposed_as_of"]
    code, out, _ = _run(capsys, "restore", "find-loss", "--table", "doses")
    assert code == 0 and f"--as-of {as_of}" in out and "update administered_on" in out

    where = f"administered_on = '{incident.day.isoformat()}' AND dose_number = 1"
    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses",
                        "--where", where, "--dry-run", "--json")
    assert code == 0
    dry = json.loads(out)
    plan = dry["plan"]
    assert plan["counts"]["reinsert"] == len(incident.deleted)
    assert plan["counts"]["conflict"] == 1
    # the dry run's steps are timed as the restore's are (it stops before "apply"), and it saves its plan
    assert set(dry["timings"]) == {"rebuild_as_of", "changes_after_t", "classify", "parents", "save_plan"}
    assert dry["reuse"]["status"] == "saved" and dry["reuse"]["plan_id"]
    assert dry["seconds"] >= sum(dry["timings"].values()) > 0 and dry["applied"] is False
    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses",
                        "--where", where, "--dry-run")
    assert code == 0 and "dry run: nothing was restored (in " in out
    assert "seconds per step: rebuild_as_of " in out and "parents " in out
    assert " saved until " in out
    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where)
    assert code == 0 and "reused the dry run's plan " in out, out
    restored = len(incident.damaged) - 1
    assert f"restored {restored} row(s)" in out and "conflicts (1," in out
    assert f"id={incident.lot_fixed}: changed after the damage" in out

    # Only the date columns: the conflict's later lot-number fix survives, its date comes back.
    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where,
                        "--columns", "administered_on,next_due_on", "--json")
    assert code == 0 and json.loads(out)["restored"] == 1
    assert json.loads(out)["reuse"]["status"] == "not reused"
    fixed = asyncio.run(doses_now(config.database_url, {incident.lot_fixed}))[incident.lot_fixed]
    assert fixed["lot_number"] == "FIXED-LOT"
    assert fixed["administered_on"] == incident.before[incident.lot_fixed]["administered_on"]

    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where,
                        "--json")
    assert json.loads(out)["restored"] == 0

    code, out, _ = _run(capsys, "restore", "full", "--as-of", as_of, "--target-url", empty_database_url,
                        "--json")
    assert code == 0, out
    tables = {t["table"]: t for t in json.loads(out)["tables"]}
    assert tables["doses"]["loaded_rows"] == tables["doses"]["snapshot_rows"]
    rebuilt = asyncio.run(doses_now(empty_database_url, incident.damaged))
    assert rebuilt == {i: incident.before[i] for i in incident.damaged}
    assert asyncio.run(doses_now(empty_database_url, {incident.born_after})) == {}
    code, _, err = _run(capsys, "restore", "full", "--as-of", as_of, "--target-url", empty_database_url)
    assert code == 1 and "target database is not empty" in err


def test_parents_restored_with_flag_or_listed_without(env: pytest.MonkeyPatch, config: BackupConfig,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    async def remove_a_recipient() -> tuple[int, int, str]:
        await prepare(config)
        conn = await asyncpg.connect(config.database_url)
        try:
            recipient = await conn.fetchval("SELECT recipient_id FROM doses ORDER BY id LIMIT 1")
            doses = await conn.fetchval("SELECT count(*) FROM doses WHERE recipient_id = $1", recipient)
            before = await conn.fetchval("SELECT clock_timestamp()")
            async with conn.transaction():
                await conn.execute("DELETE FROM doses WHERE recipient_id = $1", recipient)
                await conn.execute("DELETE FROM recipients WHERE id = $1", recipient)
        finally:
            await conn.close()
        return recipient, doses, before.isoformat()

    recipient, doses, as_of = asyncio.run(remove_a_recipient())
    where = f"recipient_id = {recipient}"
    code, _, err = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where)
    assert code == 1
    assert err.startswith("vaxvault: rows of doses to restore reference 1 recipients row(s) that are gone "
                          f"(recipients.id = {recipient}); nothing was restored; add --with-parents")
    code, out, _ = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--where", where,
                        "--with-parents", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["reinserted"] == doses and report["plan"]["parents"] == {"recipients": 1}


def test_a_written_back_reference_to_a_gone_parent_is_refused(env: pytest.MonkeyPatch, config: BackupConfig,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The doses of a recipient moved to a new recipient, the old one deleted: writing them back
    would point at a gone parent. Their live selves hold other foreign-key values, so the parent
    check that skips rows keeping theirs still looks these up."""
    async def move_then_delete() -> tuple[int, str]:
        await prepare(config)
        conn = await asyncpg.connect(config.database_url)
        try:
            recipient = await conn.fetchval("SELECT recipient_id FROM doses ORDER BY id LIMIT 1")
            before = await conn.fetchval("SELECT clock_timestamp()")
            async with conn.transaction():
                other = await conn.fetchval(
                    "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, "
                    "center_id) SELECT '9' || lpad(id::text, 16, '0'), full_name, birth_date, sex, "
                    "district_id, center_id FROM recipients WHERE id = $1 RETURNING id", recipient)
                await conn.execute("UPDATE doses SET recipient_id = $1 WHERE recipient_id = $2",
                                   other, recipient)
                await conn.execute("DELETE FROM recipients WHERE id = $1", recipient)
        finally:
            await conn.close()
        return recipient, before.isoformat()

    recipient, as_of = asyncio.run(move_then_delete())
    code, _, err = _run(capsys, "restore", "records", "--as-of", as_of, "--table", "doses",
                        "--where", f"recipient_id = {recipient}", "--dry-run")
    assert code == 1
    assert err.startswith("vaxvault: rows of doses to restore reference 1 recipients row(s) that are gone "
                          f"(recipients.id = {recipient}); nothing was restored")


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--where", "dose_number = 1; DROP TABLE doses"], 1, "bad predicate at character 16"),
    (["--where", "secret = 1"], 1, "table doses has no column secret"),
    (["--columns", "nope"], 1, "has no column(s) nope"),
    (["--table", "nothing"], 1, "has no table 'nothing'"),
])
def test_bad_requests_fail_clearly_and_change_nothing(env: pytest.MonkeyPatch, config: BackupConfig,
                                                      capsys: pytest.CaptureFixture[str], argv: list[str],
                                                      code: int, message: str) -> None:
    async def damaged() -> str:
        await prepare(config)
        conn = await asyncpg.connect(config.database_url)
        try:
            as_of = await conn.fetchval("SELECT clock_timestamp()")
        finally:
            await conn.close()
        await _incident_after_prepare(config)
        return str(as_of.isoformat())

    # As of before an incident, so a request that went ahead would change rows.
    base = {"--as-of": asyncio.run(damaged()), "--table": "doses"}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    args = [part for pair in base.items() for part in pair]
    before = asyncio.run(_fingerprint(config.database_url))
    got, _, err = _run(capsys, "restore", "records", *args)
    assert got == code
    assert message in err and err.count("\n") == 1
    assert asyncio.run(_fingerprint(config.database_url)) == before
    # The control: the same request without the bad part does change rows.
    good = {**base, "--where": "dose_number = 1", "--table": "doses"}
    good.pop("--columns", None)
    assert _run(capsys, "restore", "records", *[p for pair in good.items() for p in pair])[0] == 0
    assert asyncio.run(_fingerprint(config.database_url)) != before


async def _incident_after_prepare(config: BackupConfig) -> None:
    await strike(config)
    await run_backup(config, full=False)


async def _fingerprint(url: str) -> tuple[object, ...]:
    """Everything a restore could change: doses, recipients and the audit log."""
    conn = await asyncpg.connect(url)
    try:
        return tuple(await conn.fetchrow(
            "SELECT (SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM doses d), "
            "(SELECT md5(string_agg(r::text, ',' ORDER BY id)) FROM recipients r), "
            "(SELECT count(*) FROM audit_log)"))
    finally:
        await conn.close()


def test_usage_errors_exit_2(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "restore", "records", "--as-of", "2026-11-22T02:00", "--table", "doses")
    assert code == 2 and "has no UTC offset" in err
    code, _, err = _run(capsys, "restore", "records", "--as-of", "yesterday", "--table", "doses")
    assert code == 2 and "not an ISO 8601 time" in err
    env.delenv("VAXVAULT_BACKUP_URL")
    code, _, err = _run(capsys, "restore", "find-loss", "--table", "doses")
    assert code == 1 and "VAXVAULT_BACKUP_URL is not set" in err
