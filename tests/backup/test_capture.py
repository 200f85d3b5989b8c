"""Change capture: init is idempotent, every kind of write is recorded with its row images."""

from __future__ import annotations

import asyncpg
import pytest

from backup.capture import SCHEMA, install
from backup.errors import CaptureError


async def test_install_is_idempotent_and_skips_audit_log(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await install(conn)
        second = await install(conn)
        assert first.tables == second.tables == ("centers", "districts", "doses", "recipients", "vaccines")
        assert first.watermark == second.watermark
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'vaxvault_capture%' AND NOT tgisinternal")
        assert triggers == 10
    finally:
        await conn.close()


async def test_unknown_table_is_named(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(CaptureError, match=r"nosuch.*tables available: .*doses"):
            await install(conn, ("doses", "nosuch"))
    finally:
        await conn.close()


async def test_insert_update_delete_truncate_are_recorded(seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        await conn.execute("UPDATE doses SET lot_number = 'L-NEW' WHERE id = 1")
        await conn.execute("DELETE FROM doses WHERE id = 2")
        await conn.execute("""INSERT INTO doses (recipient_id, dose_number, vaccine_code, lot_number,
                              administered_on, center_id, recorded_by)
                              SELECT recipient_id, 6, vaccine_code, 'L-6', DATE '2024-01-02', center_id, 'x'
                              FROM doses WHERE id = 1""")
        await conn.execute("UPDATE recipients SET full_name = 'Not Captured' WHERE id = 1")
        rows = await conn.fetch(f"SELECT op, table_name, key, old, new, pg_xact_commit_timestamp(txid::xid) "
                                f"AS committed FROM {SCHEMA}.changes ORDER BY position")
        assert [(r["op"], r["table_name"]) for r in rows] == [
            (b"U", "doses"), (b"D", "doses"), (b"I", "doses")]
        update, delete, insert = rows
        assert update["key"] == '{"id": 1}'
        assert '"lot_number": "L-NEW"' in update["new"] and '"lot_number": "L-NEW"' not in update["old"]
        assert delete["new"] is None and '"id": 2' in delete["old"]
        assert insert["old"] is None and '"administered_on": "2024-01-02"' in insert["new"]
        assert all(r["committed"] is not None for r in rows)
        await conn.execute("TRUNCATE doses")
        last = await conn.fetchrow(f"SELECT op, key FROM {SCHEMA}.changes ORDER BY position DESC LIMIT 1")
        assert (last["op"], last["key"]) == (b"T", None)
    finally:
        await conn.close()


async def test_the_api_role_is_captured_but_cannot_read_or_edit_the_change_log(
        seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn)
        await conn.execute("SET ROLE vaxvault_api")
        await conn.execute("UPDATE doses SET lot_number = 'BY-API' WHERE id = 3")
        for statement in (f"SELECT count(*) FROM {SCHEMA}.changes", f"DELETE FROM {SCHEMA}.changes"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        await conn.execute("RESET ROLE")
        new = await conn.fetchval(f"SELECT new ->> 'lot_number' FROM {SCHEMA}.changes "
                                  "WHERE key = jsonb_build_object('id', 3)")
        assert new == "BY-API"
    finally:
        await conn.close()
