"""An authenticated repository: with a key, a bucket writer who lacks it can neither swap a chunk,
edit or forge a manifest, nor plant a schema object; verify and restore refuse, and write nothing.
Run against file:// and the S3 endpoint over HTTP."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime

import asyncpg
import pytest

from api.domain.disaster_recovery import restore_registry
from backup.config import BackupConfig
from backup.errors import BackupError
from backup.restore.full import plan_full
from backup.restore.predicate import parse
from backup.restore.records import RestoreRequest, restore_records
from backup.runner import run_backup
from backup.stages import build_stages
from backup.storage import codec, keys
from backup.storage.codec import Key
from backup.storage.file import FileRepository
from backup.storage.manifest import ObjectRef, SnapshotManifest, decode_manifest, dump, encode_manifest
from backup.storage.repository import Repository, open_repository
from backup.verify import verify
from tests.backup.conftest import install_capture

pytestmark = pytest.mark.slow

EVIL_DDL = b"CREATE TABLE pwned (x int);"


def _forged_snapshot(repo: Repository, snapshot_id: str, cut_at: datetime) -> str:
    """What a writer without the key can make: a plaintext manifest whose SHA-256s match the
    plaintext objects it planted beside it. Returns the manifest's key."""
    schema_key = keys.format_schema_key(snapshot_id)
    schema = codec.compress(EVIL_DDL)
    repo.put(schema_key, schema)
    forged = SnapshotManifest(id=snapshot_id, cut_at=cut_at, position="1:1:", database="vaxvault",
                              server_version="15", encryption_key_id=None,
                              schema=ObjectRef(schema_key, codec.sha256(schema), len(schema)), tables=())
    manifest_key = keys.format_snapshot_manifest_key(snapshot_id)
    repo.put(manifest_key, dump(forged))
    return manifest_key


ATTACKS = ("swap a chunk", "edit a manifest", "plant a schema object", "plant a snapshot")


def _attack(repo: Repository, attack: str, snapshot_id: str, cut_at: datetime) -> tuple[str, list[str]]:
    """Tamper with the primary as `attack` says; return the object key verify must name and the
    keys to put back (or delete) afterwards."""
    if attack == "swap a chunk":
        first, second = [o.key for o in repo.list(f"snapshots/{snapshot_id}/tables/doses/")][:2]
        repo.put(first, repo.get(second))
        return first, [first]
    if attack == "edit a manifest":
        named = _forged_snapshot(repo, snapshot_id, cut_at)
        return named, [named, keys.format_schema_key(snapshot_id)]
    if attack == "plant a schema object":
        schema_key = keys.format_schema_key(snapshot_id)
        repo.put(schema_key, codec.compress(EVIL_DDL))
        return schema_key, [schema_key]
    planted = keys.format_id(datetime.now().astimezone())
    return _forged_snapshot(repo, planted, cut_at), [keys.format_snapshot_manifest_key(planted),
                                                     keys.format_schema_key(planted)]


@pytest.fixture(params=["file", "s3"])
def config(request: pytest.FixtureRequest) -> BackupConfig:
    base: BackupConfig = request.getfixturevalue("file_config" if request.param == "file" else "s3_config")
    return replace(base, key=Key(os.urandom(32)))


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        found: int = await conn.fetchval(sql)
        return found
    finally:
        await conn.close()


async def test_a_bucket_writer_without_the_key_is_refused(config: BackupConfig,
                                                          empty_database_url: str) -> None:
    await install_capture(config.database_url)
    summary = await run_backup(config, full=True)
    conn = await asyncpg.connect(config.database_url)
    try:
        as_of: datetime = await conn.fetchval("SELECT clock_timestamp()")
        await conn.execute("DELETE FROM doses WHERE id <= 20")
    finally:
        await conn.close()
    before = await _count(config.database_url, "SELECT count(*) FROM doses")
    primary = open_repository(config.primary_url or "", config.s3_endpoint_url)
    original = {o.key: primary.get(o.key) for o in primary.list()}
    stages = build_stages(FileRepository(config.spool_dir), config.primary_url, config.replica_urls,
                          config.s3_endpoint_url)
    request = RestoreRequest(table="doses", as_of=as_of, where=parse("id <= 20"))
    assert summary.snapshot_id is not None
    for attack in ATTACKS:
        named, touched = _attack(primary, attack, summary.snapshot_id, as_of)
        report = verify(stages, deep=True, key=config.key)
        assert [(p.stage, p.key) for p in report.problems] == [("primary", named)], attack
        if attack != "plant a schema object":  # a records restore never reads the schema object
            with pytest.raises(BackupError) as refused:
                await restore_records(config.database_url, primary, config.key, request)
            assert named in str(refused.value) or "SHA-256" in str(refused.value), attack
        # `restore full` builds the schema from the code's migrations and never reads the
        # schema object, so that attack cannot reach it; every other one must be refused.
        if attack != "plant a schema object":
            with pytest.raises(BackupError):
                await restore_registry(empty_database_url, primary, config.key,
                                       plan_full(primary, config.key, as_of), "test")
        assert await _count(config.database_url, "SELECT count(*) FROM doses") == before, attack
        assert await _count(empty_database_url, "SELECT count(*) FROM pg_tables "
                                                "WHERE schemaname = 'public'") == 0, attack
        for key in touched:  # the operator repairs the primary from a good copy
            if key in original:
                primary.put(key, original[key])
            else:
                primary.delete(key)
    assert verify(stages, deep=True, key=config.key).ok
    restored = await restore_records(config.database_url, primary, config.key, request)
    assert restored.reinserted == 20


def test_with_a_key_an_unsealed_object_is_refused_by_name() -> None:
    key = Key(os.urandom(32))
    sealed = codec.encode(b"rows", "snapshots/x/tables/doses/000000.copy.zst", key)
    assert codec.decode(sealed, "snapshots/x/tables/doses/000000.copy.zst", key) == b"rows"
    with pytest.raises(BackupError, match=r"snapshots/x/tables/doses/000001\.copy\.zst cannot be decrypted"):
        codec.decode(sealed, "snapshots/x/tables/doses/000001.copy.zst", key)
    with pytest.raises(BackupError, match=r"snapshots/x/schema\.sql\.zst is not authenticated"):
        codec.decode(codec.compress(EVIL_DDL), "snapshots/x/schema.sql.zst", key)


def test_a_format_1_repository_is_read_only_without_a_key() -> None:
    schema = ObjectRef("snapshots/x/schema.sql.zst", "0" * 64, 1)
    old = SnapshotManifest(id="20261122T020000000000Z", cut_at=datetime.now().astimezone(),
                           position="5:5:", database="vaxvault", server_version="15",
                           encryption_key_id=None, schema=schema, tables=(), format_version="1.0")
    object_key = keys.format_snapshot_manifest_key(old.id)
    assert decode_manifest(dump(old), object_key, None, object_key) == old
    with pytest.raises(BackupError, match=r"unauthenticated manifest of repository format 1\.0.*without "
                                          r"VAXVAULT_BACKUP_ENCRYPTION_KEY.*backup run --full"):
        decode_manifest(dump(old), object_key, Key(os.urandom(32)), object_key)
    key = Key(os.urandom(32))
    sealed = encode_manifest(replace(old, format_version="2.0"), object_key, key)
    assert b"vaxvault" not in sealed  # nothing of the body in the clear
    assert decode_manifest(sealed, object_key, key, object_key).id == old.id
    with pytest.raises(BackupError, match="is encrypted; set VAXVAULT_BACKUP_ENCRYPTION_KEY"):
        decode_manifest(sealed, object_key, None, object_key)
