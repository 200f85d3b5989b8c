"""Every path that identifies a person is an audited read the person can see (policy.PERSONAL_PATHS)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from api.cli import main
from api.db.pool import create_pool
from api.policy import PERSONAL_PATHS
from api.principal import Role
from api.settings import Settings
from backup.config import BackupConfig
from tests.api.client import principal, run
from tests.api.conftest import Cast
from tests.restore.scenario import prepare

F = TypeVar("F", bound=Callable[..., Any])
COVERED: set[str] = set()


def covers(*paths: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        COVERED.update(paths)
        return test
    return mark


ACCESS_LOG = "{ me { accessLog { action role centerId fields } } }"


async def _reads_of(owner: asyncpg.Connection, recipient_id: int) -> list[dict[str, Any]]:
    rows = await owner.fetch("SELECT actor_role, actor_center_id, fields FROM audit_log "
                             "WHERE action = 'read' AND recipient_ids @> ARRAY[$1::bigint] "
                             "ORDER BY id", recipient_id)
    return [dict(r) for r in rows]


async def _seen_by(pool: asyncpg.Pool, settings: Settings, recipient_id: int) -> list[dict]:
    me = await run(pool, settings, principal(Role.RECIPIENT, sub=str(recipient_id)), ACCESS_LOG)
    assert not me.errors and me.data is not None
    return me.data["me"]["accessLog"]


@covers("recipients(filter.nationalId)", "recipients(filter.phone)")
async def test_a_lookup_by_national_id_or_phone_is_a_read_even_selecting_only_id(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    rid, national_id, phone = await owner.fetchrow(
        "SELECT id, national_id, phone FROM recipients WHERE center_id = $1 AND phone IS NOT NULL "
        "AND id <> $2 ORDER BY id LIMIT 1", cast.center_id, cast.recipient_id)
    assert await _reads_of(owner, rid) == []
    for column, value in (("nationalId", national_id), ("phone", phone)):
        found = await run(pool, seeded_settings, cast.staff,
                          f'{{ recipients(filter: {{{column}: "{value}"}}) '
                          "{ edges { node { id } } } }")
        assert found.data == {"recipients": {"edges": [{"node": {"id": str(rid)}}]}}
    reads = await _reads_of(owner, rid)
    assert [(r["actor_role"], r["actor_center_id"], r["fields"]) for r in reads] == [
        ("center_staff", cast.center_id, ["nationalId"]),
        ("center_staff", cast.center_id, ["phone"])]
    seen = await _seen_by(pool, seeded_settings, rid)
    assert {tuple(e["fields"]) for e in seen if e["role"] == "center_staff"} == {
        ("nationalId",), ("phone",)}
    # A search by district alone confirms no value: no read.
    before = len(await _reads_of(owner, rid))
    await run(pool, seeded_settings, cast.staff, '{ recipients(first: 100) { edges { node { id } } } }')
    assert len(await _reads_of(owner, rid)) == before


@covers("registerRecipient->DuplicateNationalId")
async def test_a_duplicate_national_id_tells_staff_nothing_of_where_and_is_audited(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    holder, national_id = await owner.fetchrow(
        "SELECT r.id, r.national_id FROM recipients r "
        "WHERE r.center_id <> $1 AND NOT EXISTS (SELECT 1 FROM doses d WHERE "
        "d.recipient_id = r.id AND d.center_id = $1) ORDER BY r.id LIMIT 1", cast.center_id)
    register = ('mutation { registerRecipient(input: {nationalId: "' + national_id + '", '
                'fullName: "Rahim Uddin", birthDate: "1990-01-01", sex: "male", districtId: "'
                f'{cast.district_id}"}}) {{ __typename ... on DuplicateNationalId '
                '{ field value message } } }')
    answer = await run(pool, seeded_settings, cast.staff, register)
    assert answer.data is not None
    duplicate = answer.data["registerRecipient"]
    assert duplicate["__typename"] == "DuplicateNationalId"
    # Nothing about the holder: not their id, center, district, nor a hint to search.
    assert duplicate["message"] == (f"national ID {national_id} cannot be registered; ask an "
                                    "administrator")
    # The failed INSERT rolled back its savepoint; the read of the holder survives it.
    reads = await _reads_of(owner, holder)
    assert [(r["actor_role"], r["fields"]) for r in reads] == [("center_staff", ["nationalId"])]
    assert await owner.fetchval("SELECT count(*) FROM recipients WHERE national_id = $1",
                                national_id) == 1
    seen = await _seen_by(pool, seeded_settings, holder)
    assert [e["fields"] for e in seen if e["role"] == "center_staff"] == [["nationalId"]]


@covers("auditLog.detail")
async def test_admin_reading_write_details_is_a_read_auditors_see_them_redacted(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    registered = await run(pool, seeded_settings, cast.admin, (
        'mutation { registerRecipient(input: {nationalId: "1999000000123", fullName: '
        '"Karima Begum", birthDate: "1980-05-05", sex: "female", phone: "+8801712345678", '
        f'districtId: "{cast.district_id}", centerId: "{cast.center_id}"}}) '
        '{ ... on Recipient { id } } }'))
    assert registered.data is not None
    rid = int(registered.data["registerRecipient"]["id"])
    reads_before = await _reads_of(owner, rid)
    query = (f'{{ auditLog(filter: {{recipientId: "{rid}", action: "write"}}) '
             '{ edges { node { detail } } } }')
    auditor = await run(pool, seeded_settings, cast.auditor, query)
    assert auditor.data is not None
    redacted = json.dumps(auditor.data)
    assert "1999000000123" not in redacted and "Karima" not in redacted
    assert "+8801712345678" not in redacted
    assert await _reads_of(owner, rid) == reads_before
    admin = await run(pool, seeded_settings, cast.admin, query)
    assert admin.data is not None and "1999000000123" in json.dumps(admin.data)
    reads = await _reads_of(owner, rid)
    assert len(reads) == len(reads_before) + 1
    assert reads[-1]["actor_role"] == "admin"
    assert set(reads[-1]["fields"]) == {"nationalId", "fullName", "phone", "birthDate"}
    seen = await _seen_by(pool, seeded_settings, rid)
    assert any(e["role"] == "admin" and "nationalId" in e["fields"] for e in seen)


async def test_auditors_see_restore_predicates_without_their_values(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    await owner.execute(
        "INSERT INTO audit_log (actor_sub, actor_role, action, operation, detail) VALUES "
        "('admin-1', 'admin', 'restore', 'restore records', $1::jsonb)",
        json.dumps({"table": "recipients", "predicate": "national_id = '1234567890123' AND "
                    "phone = '+8801712345678' AND center_id = 4"}))
    query = '{ auditLog(filter: {action: "restore"}) { edges { node { detail } } } }'
    auditor = await run(pool, seeded_settings, cast.auditor, query)
    assert auditor.data is not None
    predicate = auditor.data["auditLog"]["edges"][0]["node"]["detail"]["predicate"]
    assert predicate == "national_id = '***' AND phone = '***' AND center_id = '***'"
    admin = await run(pool, seeded_settings, cast.admin, query)
    assert admin.data is not None
    assert "1234567890123" in admin.data["auditLog"]["edges"][0]["node"]["detail"]["predicate"]


@covers("restoreJob.conflicts")
async def test_admin_reading_restore_conflict_values_is_a_read(
        pool: asyncpg.Pool, seeded_settings: Settings, cast: Cast,
        owner: asyncpg.Connection) -> None:
    rid = cast.recipient_id
    conflict = {"key": {"id": rid}, "action": "conflict", "reason": "changed after T",
                "columns": {"phone": ["+8801711111111", "+8801722222222"]}}
    job = await owner.fetchval(
        "INSERT INTO restore_jobs (status, table_name, as_of, request, result) VALUES "
        "('succeeded', 'recipients', now(), '{}'::jsonb, $1::jsonb) RETURNING id",
        json.dumps({"conflicts": [conflict], "conflicts_total": 1}))
    before = len(await _reads_of(owner, rid))
    query = (f'{{ restoreJob(id: "{job}", revealPersonal: %s) {{ conflicts {{ columns {{ column '
             'now atT masked } } } }')
    withheld = await run(pool, seeded_settings, cast.admin, query % "false")
    assert withheld.data is not None, withheld.errors
    assert withheld.data["restoreJob"]["conflicts"][0]["columns"] == [
        {"column": "phone", "now": None, "atT": None, "masked": True}]
    assert len(await _reads_of(owner, rid)) == before  # nothing shown, nothing read
    answer = await run(pool, seeded_settings, cast.admin, query % "true")
    assert answer.data is not None, answer.errors
    assert answer.data["restoreJob"]["conflicts"][0]["columns"][0]["now"] == "+8801711111111"
    reads = await _reads_of(owner, rid)
    assert len(reads) == before + 1 and reads[-1]["fields"] == ["phone"]


@pytest.fixture
def backup_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               database_url: str) -> BackupConfig:
    config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                          primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)
    for name in list(os.environ):
        if name.startswith("VAXVAULT_") and not name.startswith("VAXVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", database_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", config.primary_url or "")
    return config


PLAN = """query Plan($input: RestoreInput!, $reveal: Boolean!) {
  planRestore(input: $input, revealPersonal: $reveal) {
  ... on RestorePlan { sample { columns { column now atT masked } } } } }"""


@covers("cli:restore records", "planRestore.sample")
def test_restore_row_values_shown_by_the_command_or_over_graphql_are_reads(
        backup_env: BackupConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    async def rename() -> tuple[int, str]:
        await prepare(backup_env)
        conn = await asyncpg.connect(backup_env.database_url)
        try:
            rid = await conn.fetchval("SELECT min(id) FROM recipients")
            as_of = await conn.fetchval("SELECT clock_timestamp()")
            await conn.execute("UPDATE recipients SET full_name = 'Wrong Name' WHERE id = $1", rid)
        finally:
            await conn.close()
        return rid, as_of.isoformat()

    async def reads(rid: int) -> list[tuple[str, str, list[str]]]:
        conn = await asyncpg.connect(backup_env.database_url)
        try:
            rows = await conn.fetch("SELECT actor_sub, operation, fields FROM audit_log WHERE "
                                    "action = 'read' AND recipient_ids @> ARRAY[$1::bigint]", rid)
        finally:
            await conn.close()
        return [(r["actor_sub"], r["operation"], list(r["fields"])) for r in rows]

    rid, as_of = asyncio.run(rename())
    code = main(["restore", "records", "--as-of", as_of, "--table", "recipients", "--where",
                 f"id = {rid}", "--dry-run", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Wrong Name" in out
    [(actor, operation, fields)] = asyncio.run(reads(rid))
    assert actor.startswith("cli:") and operation == "cli:restore records"
    assert fields == ["fullName"]

    async def plan_over_graphql(reveal: bool) -> dict[str, Any]:
        settings = Settings(database_url=backup_env.database_url,
                            backup_url=backup_env.primary_url, state_dir=tmp_path / "state")
        pool = await create_pool(settings)
        try:
            answer = await run(pool, settings, principal(Role.ADMIN), PLAN, {"input": {
                "asOf": as_of, "table": "RECIPIENTS",
                "filter": [{"column": "id", "operator": "IN", "values": [str(rid)]}]},
                "reveal": reveal})
        finally:
            await pool.close()
        assert answer.data is not None, answer.errors
        return answer.data["planRestore"]

    # Masked by default: the plan withholds the values and nobody's data was read.
    plan = asyncio.run(plan_over_graphql(reveal=False))
    [column] = [c for c in plan["sample"][0]["columns"] if c["column"] == "full_name"]
    assert column == {"column": "full_name", "now": None, "atT": None, "masked": True}
    assert [r[1:] for r in asyncio.run(reads(rid))] == [("cli:restore records", ["fullName"])]
    # Revealing is the audited act.
    plan = asyncio.run(plan_over_graphql(reveal=True))
    shown = {c["column"]: c["now"] for c in plan["sample"][0]["columns"]}
    assert shown["full_name"] == "Wrong Name"
    assert [r[1:] for r in asyncio.run(reads(rid))] == [
        ("cli:restore records", ["fullName"]), ("Plan", ["fullName"])]


def test_every_personal_path_in_the_policy_table_has_a_test_here() -> None:
    assert set(PERSONAL_PATHS) == COVERED
