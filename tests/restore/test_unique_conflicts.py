"""A row whose unique key another row holds now is a listed conflict, never an aborted restore;
and no error text that leaves a restore carries a row value."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.restore.errors import RestoreError
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, plan_restore, restore_records
from backup.runner import run_backup
from backup.storage.repository import open_repository

pytestmark = pytest.mark.slow

DAMAGED = (1, 2, 3)


@pytest.fixture
def config(seeded_database_url: str, tmp_path: Path) -> BackupConfig:
    return BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                        primary_url=(tmp_path / "primary").as_uri(), chunk_rows=300)


async def _incident(config: BackupConfig, index_sql: str) -> tuple[datetime, dict[int, str]]:
    """national_id of recipients 1-3 overwritten (freeing their values); then recipient 2's real
    national_id is registered again for a new person, so writing 2 back would collide."""
    conn = await asyncpg.connect(config.database_url)
    try:
        await conn.execute("ALTER TABLE recipients DROP CONSTRAINT recipients_national_id_key")
        await conn.execute(index_sql)
        await install(conn)
        await run_backup(config, full=True)
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
        original = {r["id"]: r["national_id"] for r in await conn.fetch(
            "SELECT id, national_id FROM recipients WHERE id = ANY($1::bigint[])", list(DAMAGED))}
        await conn.execute("UPDATE recipients SET national_id = '99999' || lpad(id::text, 5, '0') "
                           "WHERE id = ANY($1::bigint[])", list(DAMAGED))
        await conn.execute(
            "INSERT INTO recipients (national_id, full_name, birth_date, sex, district_id, center_id) "
            "SELECT $1, 'Someone Else', DATE '1990-01-01', 'female', district_id, center_id "
            "FROM recipients WHERE id = 2", original[2])
    finally:
        await conn.close()
    return as_of, original


async def _national_ids(url: str) -> dict[int, str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["id"]: r["national_id"] for r in await conn.fetch(
            "SELECT id, national_id FROM recipients WHERE id = ANY($1::bigint[])", list(DAMAGED))}
    finally:
        await conn.close()


@pytest.mark.parametrize(("index_sql", "seen_in_plan"), [
    # A unique index that is no constraint: classify sees it, the dry run lists the conflict.
    ("CREATE UNIQUE INDEX recipients_nid_once ON recipients (national_id)", True),
    # On an expression: only applying can tell; the violation becomes a conflict, not an abort.
    ("CREATE UNIQUE INDEX recipients_nid_once ON recipients ((national_id || ''))", False),
])
async def test_write_back_onto_a_taken_unique_key_is_a_conflict(config: BackupConfig, index_sql: str,
                                                                 seen_in_plan: bool) -> None:
    as_of, original = await _incident(config, index_sql)
    repo = open_repository(config.primary_url or "")
    request = RestoreRequest(table="recipients", as_of=as_of, where=parse("id IN (1, 2, 3)"),
                             columns=("national_id",))
    plan = await plan_restore(config.database_url, repo, None, request)
    assert plan.counts["conflict"] == (1 if seen_in_plan else 0)
    report = await restore_records(config.database_url, repo, None, request)
    assert report.written_back == 2 and report.plan.conflicts_total == 1
    [conflict] = report.plan.conflicts
    assert conflict.key == {"id": 2} and "recipients_nid_once" in conflict.reason
    now = await _national_ids(config.database_url)
    assert now[1] == original[1] and now[3] == original[3] and now[2] == "9999900002"
    again = await restore_records(config.database_url, repo, None, request)
    assert again.restored == 0 and again.plan.conflicts_total == 1


async def test_a_failure_in_postgresql_names_the_constraint_not_the_row(config: BackupConfig) -> None:
    as_of, original = await _incident(config, "CREATE UNIQUE INDEX recipients_nid_once ON recipients "
                                              "(national_id)")
    conn = await asyncpg.connect(config.database_url)
    try:
        # A rule added since T that the rows at T break: the restore must fail whole...
        await conn.execute("ALTER TABLE recipients ADD CONSTRAINT nid_not_original "
                           "CHECK (national_id LIKE '99999%' OR id > 3) NOT VALID")
    finally:
        await conn.close()
    repo = open_repository(config.primary_url or "")
    request = RestoreRequest(table="recipients", as_of=as_of, where=parse("id IN (1, 3)"),
                             columns=("national_id",))
    with pytest.raises(RestoreError) as failure:
        await restore_records(config.database_url, repo, None, request)
    message = str(failure.value)
    # ...and say which rule, never which values (PostgreSQL's detail quotes the failing row).
    assert "nid_not_original" in message and "CheckViolation" in message
    assert not any(value in message for value in original.values())
    assert await _national_ids(config.database_url) == {i: f"999990000{i}" for i in DAMAGED}
