"""Copies between stages: a directory copy hashes what it writes instead of reading it back, and
still refuses a corrupted object; a multipart upload whose part fails leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest

from backup.config import BackupConfig
from backup.errors import StorageError
from backup.runner import run_backup
from backup.stages import scan
from backup.storage import reader
from backup.storage.file import TEMP_SUFFIX, FileRepository
from backup.storage.s3 import S3Repository
from backup.storage.transfer import stored_sha256
from tests.backup.conftest import install_capture
from tests.faulty_proxy import FaultyProxy

PART = 5 * 1024 * 1024  # the smallest part S3 (and moto) accepts


KEY = "snapshots/20261201T000000000000Z/tables/doses/000000.copy.zst"


def test_a_directory_on_the_spools_filesystem_gets_a_hard_link_hashed_as_it_holds_it(tmp_path: Path) -> None:
    source = tmp_path / "object"
    payload = os.urandom(9 * 1024 * 1024 + 7)  # several read pieces
    source.write_bytes(payload)
    target = FileRepository(tmp_path / "target")
    assert stored_sha256(target, KEY, source) == hashlib.sha256(payload).hexdigest()
    stored = tmp_path / "target" / KEY
    assert stored.stat().st_ino == source.stat().st_ino  # a second name, no second write
    assert target.get(KEY) == payload
    assert not list((tmp_path / "target").rglob(f"*{TEMP_SUFFIX}"))
    # A second stage gets a copy of its own: damage to one stage's file never reaches another's.
    replica = FileRepository(tmp_path / "replica")
    assert stored_sha256(replica, KEY, source) == hashlib.sha256(payload).hexdigest()
    assert (tmp_path / "replica" / KEY).stat().st_ino != source.stat().st_ino
    assert source.stat().st_nlink == 2
    assert not list((tmp_path / "replica").rglob(f"*{TEMP_SUFFIX}"))
    # The source goes (the spool releases its unit): the target keeps the bytes.
    source.unlink()
    assert target.get(KEY) == payload and stored.stat().st_nlink == 1
    # Already there (a resumed push): what the target holds is read and hashed, not the source.
    stored.unlink()
    stored.write_bytes(b"other bytes")
    source.write_bytes(payload)
    assert stored_sha256(target, KEY, source) == hashlib.sha256(b"other bytes").hexdigest()


def test_a_directory_on_another_filesystem_gets_a_copy_hashed_as_it_is_written(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm)")
    payload = os.urandom(9 * 1024 * 1024 + 7)  # several copy pieces
    source = other / f"vaxvault-test-{os.getpid()}-{tmp_path.name}"
    source.write_bytes(payload)
    try:
        target = FileRepository(tmp_path / "target")
        assert stored_sha256(target, KEY, source) == hashlib.sha256(payload).hexdigest()
        assert (tmp_path / "target" / KEY).stat().st_ino != source.stat().st_ino
        assert target.get(KEY) == payload
        assert not list((tmp_path / "target").rglob(f"*{TEMP_SUFFIX}"))
    finally:
        source.unlink()


async def test_a_corrupted_spool_object_is_refused_and_pushed_once_repaired(file_config: BackupConfig,
                                                                          tmp_path: Path) -> None:
    """The spool keeps a snapshot its primary could not take; one of its chunks then rots. The
    next run's copy hashes the bytes it writes and refuses them, naming the spool's copy as the
    damaged one: nothing is committed at the primary. Once the chunk is whole again, the next run
    pushes the snapshot."""
    await install_capture(file_config.database_url)
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match="kept in the spool"):
        await run_backup(replace(file_config, primary_url=(blocker / "primary").as_uri(), replica_urls=()),
                         full=True)
    spool = FileRepository(file_config.spool_dir)
    [(kind, snapshot_id)] = [unit for unit, committed in scan(spool).items() if committed]
    chunk = next(p for p in sorted(file_config.spool_dir.rglob("*.copy.zst")))
    whole = chunk.read_bytes()
    rotten = bytearray(whole)
    rotten[len(rotten) // 2] ^= 0x01
    chunk.write_bytes(bytes(rotten))

    config = replace(file_config, replica_urls=())
    # The primary (a directory on the spool's filesystem) hard-links the spool file: the blame
    # goes to the spool's copy, not to the storage endpoint.
    with pytest.raises(StorageError, match=r"spool's copy\) no longer matches") as refused:
        await run_backup(config, full=False)
    assert "storage endpoint" not in str(refused.value)
    primary = FileRepository(tmp_path / "primary")
    assert (kind, snapshot_id) not in {u for u, committed in scan(primary).items() if committed}

    chunk.write_bytes(whole)
    await run_backup(config, full=False)
    [stored] = reader.list_snapshots(primary)
    assert stored.id == snapshot_id
    for ref in stored.objects():
        assert hashlib.sha256(primary.get(ref.key)).hexdigest() == ref.sha256


class PartRefusingProxy(FaultyProxy):
    """Forwards everything to S3 but refuses (403, which no client retries) every upload of part
    `part` of a multipart upload while `armed`."""

    def __init__(self, upstream: str, part: int) -> None:
        super().__init__(upstream)
        self.part = part
        self.armed = True
        self.refused = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        forwarding = super()._handler()

        class Handler(forwarding):  # type: ignore[valid-type, misc]
            def _forward(self) -> None:
                query = self.path.partition("?")[2].split("&")
                if proxy.armed and f"partNumber={proxy.part}" in query:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    proxy.refused += 1
                    message = b"<Error><Code>AccessDenied</Code><Message>injected</Message></Error>"
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                super()._forward()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler


def test_a_multipart_upload_whose_part_fails_leaves_nothing_and_the_next_succeeds(
        s3_endpoint_url: str, s3_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "segment"
    payload = os.urandom(2 * PART + 1000)  # three parts
    source.write_bytes(payload)
    key = "segments/20261201T000000000000Z/changes.jsonl.zst"
    with PartRefusingProxy(s3_endpoint_url, part=2) as proxy:
        repo = S3Repository(s3_bucket, "primary", proxy.url, None, multipart_bytes=PART)
        with pytest.raises(StorageError, match=key):
            repo.put_file(key, source)
        assert proxy.refused >= 1
        assert repo.head(key) is None and repo.list() == []
        client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        left = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert repo.clean_incomplete() == len(left)
        assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []

        proxy.armed = False
        assert stored_sha256(repo, key, source) == hashlib.sha256(payload).hexdigest()
        assert client.head_object(Bucket=s3_bucket, Key=f"primary/{key}")["ContentLength"] == len(payload)
        assert "-3" in client.head_object(Bucket=s3_bucket, Key=f"primary/{key}")["ETag"]  # three parts
