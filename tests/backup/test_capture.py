"""Change capture: init is idempotent, every kind of write is recorded with its row images."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from backup.capture.catalog import describe_tables
from backup.capture.triggers import CAPTURE_VERSION, SCHEMA, capture_function_sql, install
from backup.config import BackupConfig
from backup.errors import CaptureError
from backup.runner import LOCK_KEY, run_backup
from backup.schedule import summary_line
from tests import harness


async def test_install_is_idempotent_and_skips_audit_log(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await install(conn)
        second = await install(conn)
        assert first.tables == second.tables
        assert {"centers", "districts", "doses", "recipients", "vaccines"} <= set(first.tables)
        assert "audit_log" not in first.tables and "vaxvault_migrations" not in first.tables
        assert first.watermark == second.watermark
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'vaxvault_capture%' AND NOT tgisinternal")
        assert triggers == 4 * len(first.tables)  # insert, update, delete, truncate
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
        assert json.loads(update["key"]) == {"id": 1}
        assert json.loads(update["new"])["lot_number"] == "L-NEW" != json.loads(update["old"])["lot_number"]
        assert delete["new"] is None and json.loads(delete["old"])["id"] == 2
        assert insert["old"] is None and json.loads(insert["new"])["administered_on"] == "2024-01-02"
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
        # Row-level security admits the API role's writes only with a principal set.
        await conn.execute("SELECT set_config('vaxvault.role', 'admin', false)")
        await conn.execute("UPDATE doses SET lot_number = 'BY-API' WHERE id = 3")
        for statement in (f"SELECT count(*) FROM {SCHEMA}.changes", f"DELETE FROM {SCHEMA}.changes"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        await conn.execute("RESET ROLE")
        new = await conn.fetchval(f"SELECT new ->> 'lot_number' FROM {SCHEMA}.changes "
                                  "WHERE key::jsonb = jsonb_build_object('id', 3)")
        assert new == "BY-API"
    finally:
        await conn.close()


async def test_bulk_statements_and_key_changes_are_recorded_row_by_row(
        seeded_database_url: str) -> None:
    conn = await asyncpg.connect(seeded_database_url)
    try:
        await install(conn, ("doses",))
        touched = await conn.fetchval("SELECT count(*) FROM doses WHERE dose_number = 1")
        await conn.execute("UPDATE doses SET administered_on = NULL WHERE dose_number = 1")
        updates = await conn.fetch(f"SELECT key, old ->> 'administered_on' AS before, "
                                   f"new ->> 'administered_on' AS after FROM {SCHEMA}.changes "
                                   "WHERE op = 'U'")
        assert len(updates) == touched > 100
        assert all(u["before"] is not None and u["after"] is None for u in updates)
        top = await conn.fetchval("SELECT max(id) FROM doses")
        await conn.execute("UPDATE doses SET id = $1 WHERE id = 1", top + 1)
        moved = await conn.fetch(f"SELECT op, key FROM {SCHEMA}.changes "
                                 "WHERE op <> 'U' ORDER BY position")
        assert sorted((m["op"], json.loads(m["key"])["id"]) for m in moved) == [
            (b"D", 1), (b"I", top + 1)]
    finally:
        await conn.close()


async def test_a_composite_key_and_names_that_need_quoting_are_captured(database_url: str) -> None:
    """The per-table capture functions are generated SQL: odd names must be quoted everywhere,
    and every key column must pair old and new rows of an UPDATE."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute('CREATE TABLE "Odd ""Lots""" ("site id" int, "lot" text, "qty" int, '
                           'PRIMARY KEY ("site id", "lot"))')
        await install(conn, ('Odd "Lots"',))
        await install(conn, ('Odd "Lots"',))  # refreshing replaces the function in place
        await conn.execute('INSERT INTO "Odd ""Lots""" VALUES (1, \'a\', 5), (1, \'b\', 6)')
        await conn.execute('UPDATE "Odd ""Lots""" SET "qty" = 7 WHERE "lot" = \'a\'')
        await conn.execute('UPDATE "Odd ""Lots""" SET "lot" = \'c\' WHERE "lot" = \'b\'')
        await conn.execute('DELETE FROM "Odd ""Lots""" WHERE "lot" = \'a\'')
        rows = await conn.fetch(f"SELECT table_name, op, key::jsonb::text AS key, new ->> 'qty' AS qty "
                                f"FROM {SCHEMA}.changes ORDER BY position")
        seen = [(r["table_name"], r["op"], r["key"], r["qty"]) for r in rows]
        assert sorted(seen[:2]) == [('Odd "Lots"', b"I", '{"lot": "a", "site id": 1}', "5"),
                                    ('Odd "Lots"', b"I", '{"lot": "b", "site id": 1}', "6")]
        assert seen[2] == ('Odd "Lots"', b"U", '{"lot": "a", "site id": 1}', "7")
        # One statement moved a key: a delete and an insert, in whatever order the join gave.
        assert sorted(seen[3:5]) == [('Odd "Lots"', b"D", '{"lot": "b", "site id": 1}', None),
                                     ('Odd "Lots"', b"I", '{"lot": "c", "site id": 1}', "6")]
        assert seen[5:] == [('Odd "Lots"', b"D", '{"lot": "a", "site id": 1}', None)]
    finally:
        await conn.close()


async def test_columns_named_like_the_capture_functions_aliases_are_captured(database_url: str) -> None:
    """The capture function names the transition tables' rows n and o: a table with columns of
    those names must still be captured (a bare `to_json(n)` was ambiguous there, and every
    write to such a table failed)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE lots (id int PRIMARY KEY, n int, o text)")
        await install(conn, ("lots",))
        await conn.execute("INSERT INTO lots VALUES (1, 10, 'a'), (2, 20, 'b')")
        await conn.execute("UPDATE lots SET n = 11, o = 'c' WHERE id = 1")
        await conn.execute("DELETE FROM lots WHERE id = 2")
        rows = await conn.fetch(f"SELECT op, key::jsonb::text AS key, old::jsonb::text AS old, "
                                f"new::jsonb::text AS new FROM {SCHEMA}.changes "
                                "WHERE table_name = 'lots' ORDER BY position")
        seen = [(r["op"], r["key"], r["old"], r["new"]) for r in rows]
        assert sorted(seen[:2]) == [(b"I", '{"id": 1}', None, '{"n": 10, "o": "a", "id": 1}'),
                                    (b"I", '{"id": 2}', None, '{"n": 20, "o": "b", "id": 2}')]
        assert seen[2:] == [
            (b"U", '{"id": 1}', '{"n": 10, "o": "a", "id": 1}', '{"n": 11, "o": "c", "id": 1}'),
            (b"D", '{"id": 2}', '{"n": 20, "o": "b", "id": 2}', None)]
    finally:
        await conn.close()


async def _as_version_one(conn: asyncpg.Connection) -> None:
    """Make the installed capture of `lots` what vaxvault wrote before the version stamp: no stamp,
    and the function that took the row as a bare `n`."""
    [table] = await describe_tables(conn, "public", ("lots",))
    await conn.execute(f"ALTER TABLE {SCHEMA}.state DROP COLUMN IF EXISTS capture_version")
    await conn.execute(capture_function_sql(table).replace("to_json(n.*)", "to_json(n)")
                       .replace("to_json(o.*)", "to_json(o)"))


async def test_a_run_refreshes_capture_an_older_version_installed_or_says_to_run_init(
        database_url: str, tmp_path: Path) -> None:
    """A capture function fixed in this version reaches existing installs at their next backup
    run, which says so; a role that may not replace it fails the run with the fix (never a
    run that silently keeps the old function, nor one that skips capture)."""
    conn = await asyncpg.connect(database_url)
    role = harness.unique_name("vvt_runner")
    try:
        await conn.execute("CREATE TABLE lots (id int PRIMARY KEY, n int, o text)")
        await install(conn, ("lots",))
        assert await conn.fetchval(f"SELECT capture_version FROM {SCHEMA}.state") == CAPTURE_VERSION
        await conn.execute("INSERT INTO lots VALUES (1, 10, 'a')")
        await _as_version_one(conn)
        with pytest.raises(asyncpg.AmbiguousColumnError):
            await conn.execute("UPDATE lots SET n = 11")
        # A runner role that may read the log but not replace the owner's functions.
        await conn.execute(f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {SCHEMA} TO {role}; "
                           f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}")
        limited = BackupConfig(database_url=database_url.replace("://postgres@", f"://{role}@"),
                               spool_dir=tmp_path / "limited", primary_url=(tmp_path / "p1").as_uri())
        stale = (r"installed by an older vaxvault \(capture version 1; this one installs 2\) and this "
                 r"role cannot refresh it .*run 'vaxvault backup init' as the owner")
        with pytest.raises(CaptureError, match=stale):
            await run_backup(limited, full=False)
        with pytest.raises(asyncpg.AmbiguousColumnError):  # left as it was
            await conn.execute("UPDATE lots SET n = 11")

        config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                              primary_url=(tmp_path / "primary").as_uri())
        summary = await run_backup(config, full=True)
        assert summary_line(summary).endswith(
            "; change capture refreshed from version 1 to 2 on 1 table(s) (as 'vaxvault backup init' would)")
        await conn.execute("UPDATE lots SET n = 11")
        assert await conn.fetchval(f"SELECT capture_version FROM {SCHEMA}.state") == CAPTURE_VERSION
        after = await run_backup(config, full=False)
        assert after.refreshed is None and after.changes == 1  # the UPDATE, captured
    finally:
        await conn.execute(f"DO $$ BEGIN DROP OWNED BY {role}; DROP ROLE {role}; "
                           "EXCEPTION WHEN undefined_object THEN NULL; END $$")
        await conn.close()


async def test_an_init_of_some_tables_leaves_the_others_older_capture_to_be_refreshed(
        database_url: str, tmp_path: Path) -> None:
    """After an upgrade, `backup init --tables plots` refreshes plots only: the install must not
    be marked current while lots keeps the older function, so the next run refreshes lots."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE lots (id int PRIMARY KEY, n int, o text); "
                           "CREATE TABLE plots (id int PRIMARY KEY, v text)")
        await install(conn, ("lots", "plots"))
        await conn.execute("INSERT INTO lots VALUES (1, 10, 'a')")
        await _as_version_one(conn)
        await install(conn, ("plots",))
        with pytest.raises(asyncpg.AmbiguousColumnError):
            await conn.execute("UPDATE lots SET n = 11")
        config = BackupConfig(database_url=database_url, spool_dir=tmp_path / "spool",
                              primary_url=(tmp_path / "primary").as_uri())
        summary = await run_backup(config, full=True)
        assert summary.refreshed is not None and "on 2 table(s)" in summary.refreshed
        await conn.execute("UPDATE lots SET n = 11")
        assert await conn.fetchval(f"SELECT capture_version FROM {SCHEMA}.state") == CAPTURE_VERSION
    finally:
        await conn.close()


async def test_backup_init_waits_for_a_backup_run_holding_the_lock(database_url: str) -> None:
    """`vaxvault backup init` changes capture under a run (a switch back empties the drain's
    progress): it waits for the backup lock a run holds, then installs."""
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("CREATE TABLE waits (id int PRIMARY KEY)")
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        env = {name: value for name, value in os.environ.items() if not name.startswith("VAXVAULT_")}
        env["VAXVAULT_DATABASE_URL"] = database_url
        init = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "vaxvault"), "backup", "init", "--tables", "waits",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        done = asyncio.ensure_future(init.communicate())
        await asyncio.sleep(3)
        assert not done.done()
        assert await holder.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'waits'::regclass") == 0
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        async with asyncio.timeout(60):
            out, err = await done
        assert init.returncode == 0, err.decode()
        assert b"installed on 1 table(s): waits" in out
        assert await holder.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'waits'::regclass") > 0
    finally:
        await holder.close()
