"""The parent check trusts only a live row that already references the same parent.

A written-back row whose live self references the same parent is not probed (the enforced foreign
key vouches for the parent); one whose reference changed after T, to a parent since deleted, or a
re-inserted row, still is: the restore refuses it with the parents it would orphan.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import install
from backup.config import BackupConfig
from backup.restore.errors import MissingParents
from backup.restore.records import RestoreRequest, dry_run, restore_records
from backup.runner import run_backup
from backup.storage.repository import open_repository
from tests.restore.scenario import database_now

pytestmark = pytest.mark.slow


async def test_only_a_kept_reference_skips_the_parent_check(empty_database_url: str) -> None:
    spool, primary = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    config = BackupConfig(database_url=empty_database_url, spool_dir=spool, primary_url=primary.as_uri())
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "CREATE TABLE owners (id int PRIMARY KEY); "
            "CREATE TABLE pets (id int PRIMARY KEY, owner int REFERENCES owners, name text); "
            "INSERT INTO owners VALUES (1), (2), (3); "
            "INSERT INTO pets VALUES (1, 1, 'a'), (2, 2, 'b')")
        await install(conn, ("owners", "pets"))
        await run_backup(config, full=True)
        as_of = await database_now(empty_database_url)
        # pet 1: renamed (same owner: kept); pet 2: moved to owner 3, its old owner 2 deleted
        await conn.execute("UPDATE pets SET name = 'x' WHERE id = 1; UPDATE pets SET owner = 3 WHERE id = 2; "
                           "DELETE FROM owners WHERE id = 2")
        repo = open_repository(config.primary_url or "")
        request = RestoreRequest(table="pets", as_of=as_of)
        with pytest.raises(MissingParents, match=r"owners.id = 2\)"):
            await dry_run(empty_database_url, repo, None, request)
        await conn.execute("INSERT INTO owners VALUES (2)")
        report = await restore_records(empty_database_url, repo, None, request)
        assert report.written_back == 2
        pets = [tuple(r) for r in await conn.fetch("SELECT * FROM pets ORDER BY id")]
        assert pets == [(1, 1, "a"), (2, 2, "b")]
    finally:
        await conn.close()
        shutil.rmtree(spool, ignore_errors=True)
        shutil.rmtree(primary, ignore_errors=True)
