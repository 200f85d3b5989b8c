"""Admin operations over GraphQL: backups, startBackup, planRestore, restoreRecords, restoreJob.

Real PostgreSQL, a real file:// repository (and one S3 test over HTTP); the backup and restore
modules run for real. GraphQL runs without HTTP (tests/api/client.py), exactly as in the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.auth import mint_token
from api.db.pool import create_pool
from api.principal import Role
from api.settings import Settings
from backup.capture.triggers import install
from backup.runner import LOCK_KEY
from tests.api.client import Result, run
from tests.api.conftest import Cast
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

pytestmark = pytest.mark.slow

PLAN = """query Plan($input: RestoreInput!) { planRestore(input: $input) { __typename
  ... on RestorePlan { table predicate snapshotId segments matched conflictsTotal warnings usedLiveLog
        counts { reinsert writeBack conflict untouched }
        sample { key { column value } action reason columns { column now atT } } }
  ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }"""
RESTORE = """mutation Restore($input: RestoreInput!) { restoreRecords(input: $input) { __typename
  ... on RestoreJob { id status table predicate }
  ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }"""
JOB = """query Job($id: ID!) { restoreJob(id: $id) { id status progress error restored reinserted
  writtenBack overwritten conflictsTotal auditEntryId counts { reinsert writeBack conflict untouched }
  warnings } }"""
START = """mutation Start($kind: BackupKind!) { startBackup(kind: $kind) { __typename
  ... on BackupCompleted { kind snapshotId segmentId changes rows pushed { stage ids } }
  ... on BackupBusy { message } ... on BackupNotConfigured { message }
  ... on OperationFailed { message } } }"""
BACKUPS = "{ backups { configured stages units { kind id rows bytes stages { stage state } } } }"


@pytest.fixture
def admin_settings(seeded_settings: Settings, tmp_path: Path) -> Settings:
    return seeded_settings.with_overrides(backup_url=(tmp_path / "primary").as_uri(),
                                          backup_spool_dir=tmp_path / "spool")


@pytest.fixture
async def captured(owner: asyncpg.Connection) -> asyncpg.Connection:
    await install(owner)
    return owner


def _data(result: Result) -> dict[str, Any]:
    assert not result.errors, result.errors
    assert result.data is not None
    return result.data


async def _backup(pool: asyncpg.Pool, settings: Settings, cast: Cast, kind: str) -> dict[str, Any]:
    done = _data(await run(pool, settings, cast.admin, START, {"kind": kind}))["startBackup"]
    assert done["__typename"] == "BackupCompleted", done
    return dict(done)


async def _wait(pool: asyncpg.Pool, settings: Settings, cast: Cast, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job = _data(await run(pool, settings, cast.admin, JOB, {"id": job_id}))["restoreJob"]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"restore job {job_id} did not finish: {job}")


async def _damage(owner: asyncpg.Connection) -> tuple[datetime, dict[int, str], int]:
    """T, then the damage: dose-1 dates nulled, some dose-2 rows deleted, one nulled row fixed by
    hand afterwards (a conflict). Returns T, the damaged rows as at T, the conflicting id."""
    as_of = await owner.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(0.01)
    rows = await owner.fetch("SELECT id, to_jsonb(d)::text AS image FROM doses d WHERE "
                             "(dose_number = 1 AND id % 3 = 0) OR (dose_number = 2 AND id % 5 = 0)")
    async with owner.transaction():
        nulled = await owner.fetch("UPDATE doses SET administered_on = NULL, next_due_on = NULL "
                                   "WHERE dose_number = 1 AND id % 3 = 0 RETURNING id")
        await owner.execute("DELETE FROM doses WHERE dose_number = 2 AND id % 5 = 0")
    fixed = min(r["id"] for r in nulled)
    await owner.execute("UPDATE doses SET administered_on = DATE '2021-01-02' WHERE id = $1", fixed)
    return as_of, {r["id"]: r["image"] for r in rows}, fixed


def _input(as_of: datetime, **extra: Any) -> dict[str, Any]:
    return {"asOf": as_of.isoformat(), "table": "DOSES",
            "filter": [{"column": "dose_number", "operator": "IN", "values": ["1", "2"]}], **extra}


async def _cli_dry_run(settings: Settings, as_of: datetime) -> dict[str, Any]:
    """The CLI's dry run, as its own process: its settings go in its environment, not ours."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("VAXVAULT_") or name.startswith("VAXVAULT_TEST_")}
    env.update(VAXVAULT_DATABASE_URL=settings.database_url or "",
               VAXVAULT_BACKUP_URL=settings.backup_url or "",
               VAXVAULT_STATE_DIR=str(settings.state_dir))
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "vaxvault"), "restore", "records", "--as-of",
        as_of.isoformat(), "--table", "doses", "--where", "dose_number IN (1, 2)", "--dry-run",
        "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return dict(json.loads(out)["plan"]["counts"])


@pytest.fixture
async def second_pool(seeded_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Another API process's pool: restoreJob is answered from the database, by anyone."""
    pool = await create_pool(seeded_settings)
    yield pool
    await pool.close()


async def test_backup_plan_restore_and_restore_again(
        pool: asyncpg.Pool, second_pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection) -> None:
    owner = captured
    full = await _backup(pool, admin_settings, cast, "FULL")
    assert full["snapshotId"] and full["rows"] > 400
    assert full["pushed"] == [{"stage": "primary", "ids": [i for i in (full["segmentId"],
                                                                      full["snapshotId"]) if i]}]
    as_of, before, fixed = await _damage(owner)
    incremental = await _backup(pool, admin_settings, cast, "INCREMENTAL")
    assert incremental["kind"] == "INCREMENTAL" and incremental["changes"] == len(before) + 1

    listing = _data(await run(pool, admin_settings, cast.admin, BACKUPS))["backups"]
    assert listing["configured"] and listing["stages"] == ["spool", "primary"]
    kinds = {(u["kind"], u["id"]) for u in listing["units"]}
    assert ("snapshot", full["snapshotId"]) in kinds and ("segment", incremental["segmentId"]) in kinds
    for unit in listing["units"]:
        assert unit["stages"] == [{"stage": "spool", "state": "RELEASED"},
                                  {"stage": "primary", "state": "STORED"}]
        assert unit["bytes"] > 0

    plan = _data(await run(pool, admin_settings, cast.admin, PLAN,
                           {"input": _input(as_of)}))["planRestore"]
    assert plan["__typename"] == "RestorePlan", plan
    assert plan["warnings"] == [] and plan["usedLiveLog"]
    counts = plan["counts"]
    assert counts["reinsert"] == sum(1 for i in before if json.loads(before[i])["dose_number"] == 2)
    assert counts["writeBack"] == len(before) - counts["reinsert"] - 1 and counts["conflict"] == 1
    assert plan["predicate"] == "(dose_number IN ('1', '2'))"
    written_back = next(d for d in plan["sample"] if d["action"] == "write_back")
    assert {c["column"]: c["now"] for c in written_back["columns"]}["administered_on"] is None
    cli = await _cli_dry_run(admin_settings, as_of)
    assert cli == {"reinsert": counts["reinsert"], "write_back": counts["writeBack"],
                   "conflict": counts["conflict"], "untouched": counts["untouched"]}

    started = _data(await run(pool, admin_settings, cast.admin, RESTORE,
                              {"input": _input(as_of)}))["restoreRecords"]
    assert started["__typename"] == "RestoreJob" and started["status"] in ("PENDING", "RUNNING")
    job = await _wait(second_pool, admin_settings, cast, started["id"])
    assert job["status"] == "SUCCEEDED", job
    assert job["restored"] == counts["reinsert"] + counts["writeBack"] and job["conflictsTotal"] == 1
    assert job["warnings"] == []
    now = {r["id"]: r["image"] for r in await owner.fetch(
        "SELECT id, to_jsonb(d)::text AS image FROM doses d WHERE id = ANY($1::bigint[])",
        list(before))}
    assert {i: json.loads(now[i]) for i in before if i != fixed} == \
        {i: json.loads(before[i]) for i in before if i != fixed}
    assert json.loads(now[fixed])["administered_on"] == "2021-01-02"  # the conflict was skipped

    again = _data(await run(pool, admin_settings, cast.admin, RESTORE,
                            {"input": _input(as_of)}))["restoreRecords"]
    second = await _wait(pool, admin_settings, cast, again["id"])
    assert (second["status"], second["restored"]) == ("SUCCEEDED", 0)

    audit = await owner.fetch("SELECT action, actor_role, actor_sub, operation, detail::text "
                              "FROM audit_log WHERE action IN ('backup', 'restore') ORDER BY id")
    operations = [(r["action"], json.loads(r["detail"]).get("operation") or r["operation"])
                  for r in audit]
    assert operations.count(("backup", "startBackup")) == 2
    assert operations.count(("backup", "backups")) == 1
    assert operations.count(("restore", "planRestore")) == 1
    assert operations.count(("restore", "restoreRecords")) == 2
    assert operations.count(("restore", "restoreJob")) == 0  # polled, revealing nothing
    # The restore module's own entries, written in the restore's transaction.
    assert operations.count(("restore", "restore records")) == 2
    assert {(r["actor_role"], r["actor_sub"]) for r in audit} == {("admin", "admin-1")}


async def test_polling_a_restore_job_is_audited_only_when_it_reveals_personal_data(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    """The console polls restoreJob while a restore runs: its start and its outcome are audited
    already, so a poll that shows no personal value leaves no row; one that reveals the
    conflicts' values is audited as the operation and as a read of each person shown."""
    conflict = {"key": {"id": cast.recipient_id}, "action": "conflict",
                "reason": "changed after T", "columns": {"phone": ["+8801711111111", "+88017"]}}
    job = await owner.fetchval(
        "INSERT INTO restore_jobs (status, table_name, as_of, request, result) VALUES "
        "('running', 'recipients', now(), '{}'::jsonb, $1::jsonb) RETURNING id",
        json.dumps({"conflicts": [conflict], "conflicts_total": 1}))
    poll = ('query Poll($id: ID!, $reveal: Boolean!) { restoreJob(id: $id, revealPersonal: '
            '$reveal) { status progress conflicts { columns { column now masked } } } }')
    for _ in range(3):
        polled = _data(await run(pool, seeded_settings, cast.admin, poll,
                                 {"id": str(job), "reveal": False}))["restoreJob"]
        assert polled["conflicts"][0]["columns"][0]["masked"] is True
    missing = await run(pool, seeded_settings, cast.admin, poll, {"id": "999999", "reveal": False})
    assert missing.codes() == {"restoreJob": "NOT_FOUND"}
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 0
    shown = _data(await run(pool, seeded_settings, cast.admin, poll,
                            {"id": str(job), "reveal": True}))["restoreJob"]
    assert shown["conflicts"][0]["columns"][0]["now"] == "+8801711111111"
    rows = await owner.fetch("SELECT action, recipient_ids, detail->>'operation' AS operation, "
                             "detail->'revealed' AS revealed FROM audit_log ORDER BY id")
    assert sorted((r["action"], r["operation"]) for r in rows) == [
        ("read", None), ("restore", "restoreJob")], rows
    read = next(r for r in rows if r["action"] == "read")
    assert read["recipient_ids"] == [cast.recipient_id]
    restore = next(r for r in rows if r["action"] == "restore")
    assert json.loads(restore["revealed"]) == ["phone"]


async def test_other_roles_are_forbidden_and_nothing_runs(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection, tmp_path: Path) -> None:
    as_of = datetime.now().astimezone().isoformat()
    calls = [("backups", BACKUPS, None), ("startBackup", START, {"kind": "FULL"}),
             ("planRestore", PLAN, {"input": _input(datetime.now().astimezone())}),
             ("restoreRecords", RESTORE, {"input": _input(datetime.now().astimezone())}),
             ("restoreJob", JOB, {"id": "1"})]
    for role in Role:
        if role is Role.ADMIN:
            continue
        for root, query, variables in calls:
            result = await run(pool, admin_settings, cast.of(role), query, variables)
            assert result.data in ({root: None}, None), (role, root)
            assert result.codes() == {root: "FORBIDDEN"}, (role, root, as_of)
    assert not (tmp_path / "primary").exists()
    assert await captured.fetchval("SELECT count(*) FROM restore_jobs") == 0


async def test_filter_values_are_values_and_bad_input_is_refused(
        pool: asyncpg.Pool, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection) -> None:
    owner = captured
    await _backup(pool, admin_settings, cast, "FULL")
    as_of = await owner.fetchval("SELECT clock_timestamp()")
    doses = await owner.fetchval("SELECT count(*) FROM doses")
    for raw in ("x' OR '1'='1", "1; DROP TABLE doses; --", "') OR TRUE --"):
        plan = _data(await run(pool, admin_settings, cast.admin, PLAN, {"input": {
            "asOf": as_of.isoformat(), "table": "DOSES",
            "filter": [{"column": "lot_number", "operator": "EQ", "values": [raw]}]}}))
        assert plan["planRestore"]["matched"] == 0, raw
    assert await owner.fetchval("SELECT count(*) FROM doses") == doses

    bad = [
        ({"column": "id; DROP TABLE doses", "operator": "EQ", "values": ["1"]},
         "has no column 'id; DROP TABLE doses'"),
        ({"column": "dose_number", "operator": "EQ", "values": ["1 OR 1=1"]},
         "'1 OR 1=1' is not a valid smallint"),
        ({"column": "administered_on", "operator": "BETWEEN", "values": ["2021-01-01"]},
         "BETWEEN takes 2 value(s), got 1"),
        ({"column": "administered_on", "operator": "EQ", "values": ["yesterday"]},
         "'yesterday' is not a valid date (e.g. 2021-10-13)"),
        ({"column": "next_due_on", "operator": "IS_NULL", "values": ["x"]},
         "IS_NULL takes 0 value(s), got 1"),
    ]
    for condition, message in bad:
        for query, root in ((PLAN, "planRestore"), (RESTORE, "restoreRecords")):
            result = await run(pool, admin_settings, cast.admin, query, {"input": {
                "asOf": as_of.isoformat(), "table": "DOSES", "filter": [condition]}})
            assert result.codes() == {root: "BAD_USER_INPUT"}, (condition, result.errors)
            assert message in result.errors[0]["message"], result.errors
    for extra, message in (({"asOf": "2000-01-01T00:00:00+00:00"}, "no snapshot at or before"),
                           ({"asOf": "2030-01-01T00:00:00"}, "has no UTC offset"),
                           ({"columns": ["nope"]}, "has no column 'nope'"),
                           ({"sample": 1000}, "sample 1000 is out of range")):
        variables = {"input": {"asOf": as_of.isoformat(), "table": "DOSES", **extra}}
        result = await run(pool, admin_settings, cast.admin, RESTORE, variables)
        assert result.codes() == {"restoreRecords": "BAD_USER_INPUT"}, result.errors
        assert message in result.errors[0]["message"]
    assert await owner.fetchval("SELECT count(*) FROM restore_jobs") == 0
    refused = await owner.fetchval("SELECT count(*) FROM audit_log WHERE action = 'restore' "
                                   "AND detail->>'outcome' = 'refused'")
    assert refused == 2 * len(bad) + 4

    # Doses whose recipient is gone too: refused with the input that fixes it, then restored.
    gone = await owner.fetchval("SELECT recipient_id FROM doses GROUP BY 1 HAVING count(*) >= 2 "
                                "ORDER BY 1 LIMIT 1")
    as_of = await owner.fetchval("SELECT clock_timestamp()")
    async with owner.transaction():
        await owner.execute("DELETE FROM doses WHERE recipient_id = $1", gone)
        await owner.execute("DELETE FROM recipients WHERE id = $1", gone)
    parents = {"asOf": as_of.isoformat(), "table": "DOSES",
               "filter": [{"column": "recipient_id", "operator": "EQ", "values": [str(gone)]}]}
    result = await run(pool, admin_settings, cast.admin, PLAN, {"input": parents})
    assert result.codes() == {"planRestore": "BAD_USER_INPUT"}
    assert "withParents: true" in result.errors[0]["message"], result.errors
    started = _data(await run(pool, admin_settings, cast.admin, RESTORE,
                              {"input": {**parents, "withParents": True}}))["restoreRecords"]
    job = await _wait(pool, admin_settings, cast, started["id"])
    assert job["status"] == "SUCCEEDED", job
    assert await owner.fetchval("SELECT count(*) FROM recipients WHERE id = $1", gone) == 1
    assert await owner.fetchval("SELECT count(*) FROM doses WHERE recipient_id = $1", gone) == \
        job["reinserted"] >= 2


async def test_busy_unconfigured_and_a_job_whose_process_died(
        pool: asyncpg.Pool, seeded_settings: Settings, admin_settings: Settings, cast: Cast,
        captured: asyncpg.Connection) -> None:
    owner = captured
    unconfigured = _data(await run(pool, seeded_settings, cast.admin, START, {"kind": "FULL"}))
    assert unconfigured["startBackup"]["__typename"] == "BackupNotConfigured"
    assert "VAXVAULT_BACKUP_URL" in unconfigured["startBackup"]["message"]
    await owner.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        busy = _data(await run(pool, admin_settings, cast.admin, START, {"kind": "FULL"}))
    finally:
        await owner.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    assert busy["startBackup"]["__typename"] == "BackupBusy"
    job_id = await owner.fetchval(
        "INSERT INTO restore_jobs (status, table_name, as_of, request, heartbeat_at) VALUES "
        "('running', 'doses', now(), '{}', now() - interval '5 minutes') RETURNING id")
    job = _data(await run(pool, admin_settings, cast.admin, JOB, {"id": str(job_id)}))["restoreJob"]
    assert job["status"] == "FAILED" and "stopped" in job["error"]
    missing = await run(pool, admin_settings, cast.admin, JOB, {"id": str(job_id + 1)})
    assert missing.codes() == {"restoreJob": "NOT_FOUND"}


async def test_on_s3(pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
                     captured: asyncpg.Connection, s3_endpoint_url: str, s3_bucket: str,
                     tmp_path: Path) -> None:
    settings = seeded_settings.with_overrides(backup_url=f"s3://{s3_bucket}/registry",
                                              s3_endpoint_url=s3_endpoint_url,
                                              backup_spool_dir=tmp_path / "spool")
    full = await _backup(pool, settings, cast, "FULL")
    as_of, before, _fixed = await _damage(captured)
    await _backup(pool, settings, cast, "INCREMENTAL")
    listing = _data(await run(pool, settings, cast.admin, BACKUPS))["backups"]
    assert ("snapshot", full["snapshotId"]) in {(u["kind"], u["id"]) for u in listing["units"]}
    assert {s["state"] for u in listing["units"] for s in u["stages"]} == {"RELEASED", "STORED"}
    started = _data(await run(pool, settings, cast.admin, RESTORE,
                              {"input": _input(as_of)}))["restoreRecords"]
    job = await _wait(pool, settings, cast, started["id"])
    assert job["status"] == "SUCCEEDED" and job["restored"] == len(before) - 1


def test_over_http_a_running_restore_finishes_before_shutdown(
        admin_settings: Settings, seeded_database_url: str) -> None:
    token = mint_token(JWT_SECRET, Role.ADMIN, sub="admin-1")

    def call(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body
        return dict(body["data"])

    async def owner_run(work: Any) -> Any:
        conn = await asyncpg.connect(seeded_database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    asyncio.run(owner_run(install))
    with live_server(admin_settings) as url:
        assert call(url, START, {"kind": "FULL"})["startBackup"]["__typename"] == "BackupCompleted"
        as_of, before, _fixed = asyncio.run(owner_run(_damage))
        call(url, START, {"kind": "INCREMENTAL"})
        job = call(url, RESTORE, {"input": _input(as_of)})["restoreRecords"]
        assert job["status"] in ("PENDING", "RUNNING")
    # The server is gone: its lifespan waited for the job and recorded how it ended.
    row = asyncio.run(owner_run(lambda conn: conn.fetchrow(
        "SELECT status, result->>'restored' AS restored FROM restore_jobs WHERE id = $1",
        int(job["id"]))))
    assert (row["status"], int(row["restored"])) == ("succeeded", len(before) - 1)


async def test_plan_and_job_carry_the_restores_warnings(pool: asyncpg.Pool, admin_settings: Settings,
                                                       cast: Cast, captured: asyncpg.Connection) -> None:
    """No live change log and nothing shipped since the snapshot: the restore can only rebuild rows
    as at the snapshot, and the admin must be told so on the plan and on the job."""
    full = await _backup(pool, admin_settings, cast, "FULL")
    await captured.execute("DROP SCHEMA vaxvault_backup CASCADE")
    as_of = await captured.fetchval("SELECT clock_timestamp()")
    plan = _data(await run(pool, admin_settings, cast.admin, PLAN,
                           {"input": _input(as_of)}))["planRestore"]
    assert plan["usedLiveLog"] is False and plan["snapshotId"] == full["snapshotId"]
    [warning] = plan["warnings"]
    assert "history ends at" in warning and "live change log was not read" in warning
    started = _data(await run(pool, admin_settings, cast.admin, RESTORE,
                              {"input": _input(as_of)}))["restoreRecords"]
    job = await _wait(pool, admin_settings, cast, started["id"])
    assert job["status"] == "SUCCEEDED" and job["warnings"] == [warning]
