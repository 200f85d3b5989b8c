"""ONE contract for every repository backend: file:// and s3:// over HTTP (moto or MinIO)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backup.errors import ConfigError, ObjectNotFound, StorageError
from backup.storage.file import FileRepository
from backup.storage.repository import Repository, open_repository
from tests.faulty_proxy import FaultyProxy


@pytest.fixture(params=["file", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "file":
        return open_repository((tmp_path / "repo").as_uri())
    endpoint = request.getfixturevalue("s3_endpoint_url")
    bucket = request.getfixturevalue("s3_bucket")
    return open_repository(f"s3://{bucket}/some/prefix?endpoint={endpoint}")


def test_put_get_head_list_delete(repo: Repository) -> None:
    repo.put("snapshots/a/manifest.json", b"{}")
    repo.put("snapshots/a/tables/t/000000.copy.zst", b"\x00" * 10)
    repo.put("segments/b/manifest.json", b"[]")
    assert repo.get("snapshots/a/manifest.json") == b"{}"
    assert b"".join(repo.stream("snapshots/a/tables/t/000000.copy.zst")) == b"\x00" * 10
    assert repo.head("snapshots/a/tables/t/000000.copy.zst").size == 10  # type: ignore[union-attr]
    assert repo.head("snapshots/none") is None
    assert [o.key for o in repo.list("snapshots/")] == [
        "snapshots/a/manifest.json", "snapshots/a/tables/t/000000.copy.zst"]
    assert [o.key for o in repo.list()] == [
        "segments/b/manifest.json", "snapshots/a/manifest.json", "snapshots/a/tables/t/000000.copy.zst"]
    repo.delete("snapshots/a/manifest.json")
    repo.delete("snapshots/a/manifest.json")  # already gone: no error
    assert repo.head("snapshots/a/manifest.json") is None
    assert [o.key for o in repo.list("snapshots/")] == ["snapshots/a/tables/t/000000.copy.zst"]


def test_missing_object_is_named(repo: Repository) -> None:
    with pytest.raises(ObjectNotFound, match=r"snapshots/x/manifest\.json"):
        repo.get("snapshots/x/manifest.json")
    with pytest.raises(ObjectNotFound):
        list(repo.stream("snapshots/x/manifest.json"))


def test_put_file_overwrites_and_streams_large_objects(repo: Repository, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    payload = bytes(range(256)) * 20_000  # 5 MB: several stream pieces
    source.write_bytes(payload)
    repo.put("segments/c/changes.jsonl.zst", b"old")
    repo.put_file("segments/c/changes.jsonl.zst", source)
    assert b"".join(repo.stream("segments/c/changes.jsonl.zst")) == payload
    assert repo.clean_incomplete() == 0


def test_bad_urls_are_refused_with_the_value() -> None:
    for url, words in [("ftp://x/y", r"s3:// or file://"), ("s3:///prefix", "no bucket"),
                       ("s3://b/p?colour=red", "colour"), ("file://host/p", "file:///")]:
        with pytest.raises(ConfigError, match=words):
            open_repository(url)


def test_s3_outage_is_one_clear_storage_error(s3_endpoint_url: str, s3_bucket: str) -> None:
    with FaultyProxy(s3_endpoint_url, fail_rate=1.0, faults=("503",)) as proxy:
        repo = open_repository(f"s3://{s3_bucket}/p", s3_endpoint_url=proxy.url)
        with pytest.raises(StorageError, match=r"cannot write segments/x/manifest.json on s3://"):
            repo.put("segments/x/manifest.json", b"{}")
        assert proxy.requests >= 3  # retried with backoff before giving up


def _leave_partial_upload(repo: Repository) -> None:
    """What a killed upload leaves behind, in each backend's own terms."""
    from backup.storage.file import TEMP_SUFFIX, FileRepository
    from backup.storage.s3 import S3Repository

    if isinstance(repo, FileRepository):
        (repo.root / "snapshots").mkdir(parents=True, exist_ok=True)
        (repo.root / "snapshots" / f"x.copy.zst.1234{TEMP_SUFFIX}").write_bytes(b"half")
    else:
        assert isinstance(repo, S3Repository)
        repo.client.create_multipart_upload(Bucket=repo.bucket, Key=repo.prefix + "snapshots/big.copy.zst")


def test_partial_uploads_are_invisible_and_cleaned(repo: Repository) -> None:
    _leave_partial_upload(repo)
    assert repo.list() == []
    assert repo.clean_incomplete() == 1
    assert repo.clean_incomplete() == 0


@pytest.mark.parametrize("how", ["put", "put_file"])
def test_file_stage_syncs_the_object_and_every_new_directory(tmp_path: Path, how: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Durable before it counts: the object's bytes, its name in its directory, and the names of the
    directories the write created. Recorded by path from the real fsync calls."""
    synced: list[str] = []
    real = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real(descriptor)

    root = tmp_path / "repo"
    root.mkdir()
    repository = FileRepository(root)
    source = tmp_path / "source.bin"
    source.write_bytes(b"chunk")
    monkeypatch.setattr(os, "fsync", recording)
    if how == "put":
        repository.put("snapshots/a/tables/doses/000000.copy.zst", b"chunk")
    else:
        repository.put_file("snapshots/a/tables/doses/000000.copy.zst", source)
    assert (root / "snapshots/a/tables/doses/000000.copy.zst").read_bytes() == b"chunk"
    [written] = [p for p in synced if p.endswith(".partial")]
    assert written.startswith(str(root / "snapshots/a/tables/doses/000000.copy.zst."))
    directories = {p for p in synced if not p.endswith(".partial")}
    assert directories == {str(root / d) for d in ("snapshots/a/tables/doses", "snapshots/a/tables",
                                                   "snapshots/a", "snapshots")} | {str(root)}
    synced.clear()
    repository.delete("snapshots/a/tables/doses/000000.copy.zst")
    assert synced == [str(root / "snapshots/a/tables/doses")]


def test_list_starts_after_a_key(repo: Repository) -> None:
    """The listing index reads only what sorts after its newest unit: `start_after` skips the rest,
    including whole unit folders, and still honours the prefix."""
    for key in ("segments/1/changes.jsonl.zst", "segments/1/manifest.json", "segments/2/manifest.json",
                "segments/20/manifest.json", "segments/3/manifest.json", "snapshots/4/manifest.json"):
        repo.put(key, b"x")
    assert [o.key for o in repo.list("segments/", start_after="segments/1/\x7f")] == [
        "segments/2/manifest.json", "segments/20/manifest.json", "segments/3/manifest.json"]
    assert [o.key for o in repo.list("segments/", start_after="segments/2/manifest.json")] == [
        "segments/20/manifest.json", "segments/3/manifest.json"]
    assert [o.key for o in repo.list("segments/", start_after="segments/3/\x7f")] == []
    assert [o.key for o in repo.list(start_after="segments/3/\x7f")] == ["snapshots/4/manifest.json"]


def test_a_scoped_clean_leaves_what_sorts_before(repo: Repository) -> None:
    """remove_orphans cleans only after the listing index: an upload before that range stays."""
    _leave_partial_upload(repo)
    assert repo.clean_incomplete("snapshots/", start_after="snapshots/y") == 0
    assert repo.clean_incomplete("segments/") == 0
    assert repo.clean_incomplete("snapshots/", start_after="snapshots/a") == 1
    assert repo.clean_incomplete() == 0
