import asyncio

import asyncpg
import pytest

from api.db.migrate import available_migrations, is_current, migrate
from api.errors import MigrationError


async def test_migrate_applies_everything_once(empty_database_url: str) -> None:
    first = await migrate(empty_database_url)
    assert [m.version for m in first] == [m.version for m in available_migrations()]
    assert await migrate(empty_database_url) == []
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await is_current(conn)
        assert await conn.fetchval("SELECT count(*) FROM districts") == 64
        assert await conn.fetchval("SELECT count(DISTINCT division) FROM districts") == 8
        assert await conn.fetchval("SELECT count(*) FROM vaxvault_migrations") == len(first)
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_version_exactly_once(
        empty_database_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(4)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in available_migrations()]


async def test_an_edited_migration_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE vaxvault_migrations SET checksum = 'x' WHERE version = 1")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="0001_registry was changed after it was applied"):
        await migrate(database_url)


async def _insert_recipient(conn: asyncpg.Connection, national_id: str, **overrides: object) -> None:
    row = {"national_id": national_id, "full_name": "Test Person", "birth_date": "1980-01-01",
           "sex": "female", "phone": "+8801712345678", "district_id": 1, "center_id": 1}
    row.update(overrides)
    await conn.execute(
        "INSERT INTO recipients (national_id, full_name, birth_date, sex, phone, district_id,"
        " center_id) VALUES ($1, $2, $3::text::date, $4, $5, $6, $7)", *row.values())


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"national_id": "12345"}, asyncpg.CheckViolationError),
        ({"sex": "unknown"}, asyncpg.CheckViolationError),
        ({"phone": "+15551234567"}, asyncpg.CheckViolationError),
        ({"district_id": 99}, asyncpg.ForeignKeyViolationError),
    ],
)
async def test_recipient_constraints(database_url: str, overrides: dict, error: type) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO centers VALUES (1, 'C', 1)")
        nid = overrides.pop("national_id", "1234567890")
        with pytest.raises(error):
            await _insert_recipient(conn, nid, **overrides)
    finally:
        await conn.close()


async def test_national_id_and_dose_number_are_unique(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO centers VALUES (1, 'C', 1)")
        await _insert_recipient(conn, "1234567890")
        with pytest.raises(asyncpg.UniqueViolationError):
            await _insert_recipient(conn, "1234567890")
        dose = ("INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number,"
                " administered_on, center_id, recorded_by) VALUES (1, $1, 'AZD1222', 'L1',"
                " '2021-05-01', 1, 'staff')")
        await conn.execute(dose, 1)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(dose, 1)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(dose, 0)
    finally:
        await conn.close()


async def test_api_role_has_no_ddl_and_cannot_rewrite_audit(database_url: str) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"role": "vaxvault_api"})
    try:
        assert await conn.fetchval("SELECT current_user") == "vaxvault_api"
        # Row-level security (0004) lets the API append only in the name it set for itself.
        await conn.execute("SELECT set_config('vaxvault.role', 'admin', false)")
        await conn.execute("INSERT INTO audit_log (actor_role, action) VALUES ('admin', 'read')")
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                          "CREATE TABLE sneaky (id int)", "DROP TABLE doses",
                          "DELETE FROM recipients", "UPDATE districts SET name = 'x'"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_audit_log_is_append_only_even_for_the_owner(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO audit_log (actor_role, action) VALUES ('admin', 'read')")
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


async def test_updated_at_follows_updates_unless_set(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO centers VALUES (1, 'C', 1)")
        await _insert_recipient(conn, "1234567890")
        await conn.execute("UPDATE recipients SET updated_at = '2021-01-01', full_name = 'A'")
        assert str(await conn.fetchval("SELECT updated_at::date FROM recipients")) == "2021-01-01"
        await conn.execute("UPDATE recipients SET full_name = 'B'")
        assert await conn.fetchval("SELECT updated_at > now() - interval '1 minute' FROM recipients")
    finally:
        await conn.close()


async def test_the_audit_gin_merges_a_small_pending_list(database_url: str) -> None:
    """Migration 0031: a full pending list is merged inside some request's audit commit, so it
    is kept small (256 kB, not the 4 MB default)."""
    conn = await asyncpg.connect(database_url)
    try:
        options = await conn.fetchval("SELECT reloptions FROM pg_class "
                                      "WHERE oid = 'audit_log_recipients_idx'::regclass")
    finally:
        await conn.close()
    assert options == ["gin_pending_list_limit=256"]
