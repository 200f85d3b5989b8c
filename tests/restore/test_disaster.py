"""Total loss of the database server, and the registry back from S3 with one command and a migrate.

Every step goes through the CLI's entry point or real HTTP: backups to moto's S3 over HTTP with
encryption, DROP DATABASE, `restore full` into a new server (a fresh cluster, which lacks the API
role), `db migrate`, the API under uvicorn answering each role as before, and a new backup chain
that a later `restore records` uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.auth import mint_token
from api.cli import main
from api.db.migrate import CREATE_LEDGER, Migration, apply_migrations, available_migrations
from api.domain.disaster_recovery import split_migrations
from api.principal import Role
from api.settings import Settings
from backup.restore.errors import RestorePlanError
from tests import harness
from tests.conftest import JWT_SECRET
from tests.live_server import live_server

pytestmark = pytest.mark.slow

RECIPIENTS = 300

# Everything that makes a database a registry besides its rows, as comparable lines.
STRUCTURE = """
SELECT 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' ' || array_to_string(roles, ',')
       || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') FROM pg_policies
UNION ALL SELECT 'rls ' || relname || ' ' || relrowsecurity FROM pg_class
  WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
UNION ALL SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text FROM pg_trigger
  WHERE NOT tgisinternal
UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace IN ('public'::regnamespace, 'vaxvault_backup'::regnamespace)
UNION ALL SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  WHERE c.relnamespace IN ('public'::regnamespace, 'vaxvault_backup'::regnamespace)
UNION ALL SELECT 'grant ' || table_schema || '.' || table_name || ' ' || privilege_type
  FROM information_schema.role_table_grants WHERE grantee = 'vaxvault_api'
UNION ALL SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc) || ' ' || p.prosecdef
  || ' ' || coalesce(array_to_string(p.proacl, ','), '')
  FROM pg_proc p WHERE p.pronamespace IN ('public'::regnamespace, 'vaxvault_backup'::regnamespace)
UNION ALL SELECT 'captured ' || table_name || ' ' || array_to_string(primary_key, ',')
  FROM vaxvault_backup.captured
"""

ROWS = """SELECT md5(coalesce(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text), ''))
          FROM {table} t {where}"""
REGISTRY_TABLES = ("districts", "centers", "vaccines", "recipients", "doses", "privacy_freezes")


async def _fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(url, query, *args))


def execute(url: str, *statements: str) -> None:
    asyncio.run(_execute(url, *statements))


def structure(url: str) -> set[str]:
    return {row[0] for row in fetch(url, STRUCTURE)}


def rows(url: str, table: str, where: str = "") -> str:
    return str(fetch(url, ROWS.format(table=table, where=where))[0][0])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def _migrate_all_but_the_newest(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(CREATE_LEDGER)
            await apply_migrations(conn, available_migrations()[:-1])
    finally:
        await conn.close()


@pytest.fixture
def new_server() -> Iterator[str]:
    """A superuser URL on a server that never saw vaxvault (a new cluster), or on the test server
    when the tests run against a given one."""
    if harness.TEST_DATABASE_URL:
        yield harness.TEST_DATABASE_URL
        return
    from api.embedded_postgres import EmbeddedPostgres

    # /tmp rather than pytest's tmp dirs: the server runs as another user under root.
    with tempfile.TemporaryDirectory(prefix="vaxvault-dr-") as root:
        cluster = EmbeddedPostgres(Path(root) / "pg", throwaway=True)
        try:
            yield cluster.start()
        finally:
            cluster.destroy()


def graphql(base: str, query: str, token: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}},
                          headers={"Authorization": f"Bearer {token}"}, timeout=20)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_total_loss_to_a_serving_registry_and_a_new_chain(
        postgres_url: str, new_server: str, s3_endpoint_url: str, s3_bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("VAXVAULT_") and not name.startswith("VAXVAULT_TEST_"):
            monkeypatch.delenv(name)
    lost_name = harness.unique_name("vvt_lost")
    lost = harness.create_database(postgres_url, lost_name)
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", lost)
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VAXVAULT_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", f"s3://{s3_bucket}/registry")
    monkeypatch.setenv("VAXVAULT_S3_ENDPOINT_URL", s3_endpoint_url)
    monkeypatch.setenv("VAXVAULT_BACKUP_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())

    # The registry as it ran, one migration behind the code when its snapshot was taken, then
    # upgraded (restore must build the old level, load, and apply the newest on the rows).
    newest = available_migrations()[-1]
    asyncio.run(_migrate_all_but_the_newest(lost))
    assert cli(capsys, "db", "seed", "--recipients", str(RECIPIENTS), "--seed", "3")[0] == 0
    assert cli(capsys, "backup", "init")[0] == 0
    execute(lost, "INSERT INTO audit_log (actor_sub, actor_role, action, operation) "
                  "VALUES ('nurse-9', 'center_staff', 'read', 'before the snapshot')")
    audit_at_snapshot = rows(lost, "audit_log")
    assert cli(capsys, "backup", "run", "--full")[0] == 0
    code, out, _ = cli(capsys, "db", "migrate")
    assert code == 0 and f"{newest.version:04d}_{newest.name}" in out
    assert cli(capsys, "backup", "init")[0] == 0  # capture any table the upgrade added
    execute(lost,
            "UPDATE recipients SET phone = '+8801712345678' WHERE id % 7 = 0",
            "DELETE FROM doses WHERE id IN (SELECT id FROM doses ORDER BY id DESC LIMIT 5)",
            "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, center_id) "
            "SELECT '1234567890', 'Shipped Person', DATE '1980-02-03', 'male', district_id, id "
            "FROM centers ORDER BY id LIMIT 1",
            # Not captured (append-only history lives in full snapshots): lost with the server.
            "INSERT INTO audit_log (actor_role, action, operation) VALUES ('admin', 'read', 'after')")
    assert cli(capsys, "backup", "run", "--incremental")[0] == 0
    at_t = {table: rows(lost, table) for table in REGISTRY_TABLES}
    before = structure(lost)
    # Written after the last shipped change: gone with the server.
    execute(lost, "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, "
                  "center_id) SELECT '9876543210', 'Never Shipped', DATE '1970-01-01', 'female', "
                  "district_id, id FROM centers ORDER BY id LIMIT 1")

    harness.drop_database(postgres_url, lost_name)  # the disaster

    target_name = harness.unique_name("vvt_back")
    target = harness.create_database(new_server, target_name)
    try:
        late = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        code, _, err = cli(capsys, "restore", "full", "--as-of", late, "--target-url", target)
        assert code == 1 and "later than the history reaches" in err and "--as-of latest" in err
        assert fetch(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0

        role_existed = bool(fetch(target, "SELECT count(*) FROM pg_roles "
                                          "WHERE rolname = 'vaxvault_api'")[0][0])
        code, out, err = cli(capsys, "restore", "full", "--as-of", "latest", "--target-url", target)
        assert code == 0, err
        assert "the history reaches" in out and " ago): rows written after it were never shipped" in out
        assert f"then {newest.version:04d}_{newest.name} on the restored rows" in out
        assert ("created role vaxvault_api" in out) == (not role_existed)
        assert (not role_existed) == (harness.TEST_DATABASE_URL is None)
        code, _, err = cli(capsys, "restore", "full", "--as-of", "latest", "--target-url", target)
        assert code == 1 and "target database is not empty" in err

        # Byte for byte as at T, nothing of what came after; the structure is the lost one's.
        assert {table: rows(target, table) for table in REGISTRY_TABLES} == at_t
        assert fetch(target, "SELECT count(*) FROM recipients WHERE full_name = 'Never Shipped'")[0][0] == 0
        kept_audit = rows(target, "audit_log", "WHERE operation IS DISTINCT FROM 'restore full'")
        assert kept_audit == audit_at_snapshot
        assert structure(target) == before
        assert fetch(target, "SELECT count(*) FROM vaxvault_backup.changes")[0][0] == 0

        monkeypatch.setenv("VAXVAULT_DATABASE_URL", target)
        code, out, _ = cli(capsys, "db", "migrate")
        assert code == 0 and "applied 0 migration(s)" in out
        _serve_and_check(target, tmp_path)
        _new_chain_and_records_restore(target, capsys)
    finally:
        harness.drop_database(new_server, target_name)


def _serve_and_check(target: str, tmp_path: Path) -> None:
    center, district = fetch(target, "SELECT c.id, c.district_id FROM centers c JOIN recipients r "
                                     "ON r.center_id = c.id GROUP BY c.id ORDER BY count(*) DESC, c.id "
                                     "LIMIT 1")[0]
    visible = {r["id"]: r["national_id"] for r in fetch(
        target, "SELECT id, national_id FROM recipients r WHERE r.center_id = $1 OR EXISTS "
                "(SELECT 1 FROM doses d WHERE d.recipient_id = r.id AND d.center_id = $1)", center)}
    district_doses = fetch(target, "SELECT count(*) FROM doses d JOIN centers c ON c.id = d.center_id "
                                   "WHERE c.district_id = $1", district)[0][0]
    staff = mint_token(JWT_SECRET, Role.CENTER_STAFF, sub="nurse-dr", center_id=center)
    officer = mint_token(JWT_SECRET, Role.DISTRICT_OFFICER, sub="officer-dr", district_id=district)
    admin = mint_token(JWT_SECRET, Role.ADMIN, sub="admin-dr")
    settings = Settings(database_url=target, jwt_secret=JWT_SECRET, state_dir=tmp_path / "serve")
    with live_server(settings) as base:
        assert httpx.get(f"{base}/readyz", timeout=10).json() == {"status": "ready"}
        listed = graphql(base, "{ recipients(first: 100) { edges { node { id nationalId fullName } } } }",
                         staff)
        nodes = [e["node"] for e in listed["data"]["recipients"]["edges"]]
        assert {int(n["id"]) for n in nodes} == set(visible)
        for node in nodes:
            real = visible[int(node["id"])]
            assert node["nationalId"] == "*" * (len(real) - 4) + real[-4:] and node["fullName"]

        counted = graphql(base, "{ coverage(groupBy: [DISTRICT]) { district { id } doses } }", officer)
        assert {row["district"]["id"] for row in counted["data"]["coverage"]} <= {str(district)}
        assert all(row["doses"] in (None, district_doses) for row in counted["data"]["coverage"])
        refused = graphql(base, "{ recipients(first: 1) { edges { node { id } } } }", officer)
        assert refused["data"]["recipients"] is None
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        registered = graphql(base, """mutation($i: RegisterRecipientInput!) { registerRecipient(input: $i)
            { __typename ... on Recipient { id } } }""", staff, {"i": {
            "nationalId": "5550001112", "fullName": "After Restore", "birthDate": "1991-05-06",
            "sex": "female", "districtId": str(district)}})
        new_id = int(registered["data"]["registerRecipient"]["id"])
        assert new_id > max(visible)  # identities continue after the restored rows

        audit = graphql(base, "{ auditLog(first: 50) { edges { node { actorSub action operation } } } }",
                        admin)
        entries = [e["node"] for e in audit["data"]["auditLog"]["edges"]]
        assert {"actorSub": "nurse-dr", "action": "read"} in [
            {"actorSub": e["actorSub"], "action": e["action"]} for e in entries]
        assert any(e["operation"] == "restore full" for e in entries)
    captured = fetch(target, "SELECT op::text AS op, new->>'full_name' AS name FROM vaxvault_backup.changes "
                             "WHERE table_name = 'recipients'")
    assert [(r["op"], r["name"]) for r in captured] == [("I", "After Restore")]


def _new_chain_and_records_restore(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "backup", "init")[0] == 0
    code, out, _ = cli(capsys, "backup", "run", "--full", "--json")
    assert code == 0, out
    as_of = fetch(target, "SELECT clock_timestamp()")[0][0].isoformat()
    damaged = [r["id"] for r in fetch(target, "UPDATE doses SET administered_on = NULL, next_due_on = NULL "
                                              "WHERE id % 5 = 0 RETURNING id")]
    assert damaged
    assert cli(capsys, "backup", "run", "--incremental")[0] == 0
    code, out, err = cli(capsys, "restore", "records", "--as-of", as_of, "--table", "doses", "--json")
    assert code == 0, err
    assert json.loads(out)["restored"] == len(damaged)
    assert fetch(target, "SELECT count(*) FROM doses WHERE administered_on IS NULL")[0][0] == 0


CODE = [Migration(v, f"m{v}", f"SELECT {v}") for v in (1, 2, 3, 4, 10, 11, 30)]


@given(st.sets(st.sampled_from([m.version for m in CODE])))
def test_the_snapshot_level_splits_the_code_migrations_in_order(applied: set[int]) -> None:
    split = split_migrations(CODE, {m.version: m.checksum for m in CODE if m.version in applied}, "s1")
    assert [m.version for m in split.at_snapshot] == sorted(applied)
    assert [m.version for m in split.after] == sorted({m.version for m in CODE} - applied)


def test_a_snapshot_from_newer_or_other_code_is_refused_by_name() -> None:
    ledger = {m.version: m.checksum for m in CODE}
    with pytest.raises(RestorePlanError, match=r"does not have migration\(s\) 0031"):
        split_migrations(CODE, {**ledger, 31: "x"}, "s1")
    with pytest.raises(RestorePlanError, match="0004_m4 differ"):
        split_migrations(CODE, {**ledger, 4: "edited"}, "s1")


def test_a_restore_that_fails_half_way_leaves_the_target_empty(
        database_url: str, empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("VAXVAULT_") and not name.startswith("VAXVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAXVAULT_DATABASE_URL", database_url)
    monkeypatch.setenv("VAXVAULT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VAXVAULT_BACKUP_URL", (tmp_path / "repo").as_uri())
    assert cli(capsys, "db", "seed", "--recipients", "40")[0] == 0
    # A source whose rows break a key the code's schema has: found only after everything is
    # loaded and the foreign keys are checked, so the whole restore must roll back.
    execute(database_url, "ALTER TABLE doses DROP CONSTRAINT doses_recipient_id_fkey",
            "UPDATE doses SET recipient_id = 999999 WHERE id = (SELECT min(id) FROM doses)")
    assert cli(capsys, "backup", "init")[0] == 0
    assert cli(capsys, "backup", "run", "--full")[0] == 0
    code, _, err = cli(capsys, "restore", "full", "--as-of", "latest", "--target-url",
                       empty_database_url)
    assert code == 1 and "doses_recipient_id_fkey" in err and "nothing was kept" in err
    left = fetch(empty_database_url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                     "c.relnamespace WHERE n.nspname IN ('public', 'vaxvault_backup')")
    assert left[0][0] == 0
