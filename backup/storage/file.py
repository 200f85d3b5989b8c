"""A repository in a local directory (also the layout of the stage-1 spool).

Durable before it counts: a file is fsynced before it is renamed into place, and the directory
that holds the new name (and every directory the write created) is fsynced after, so a power
cut never leaves a manifest whose objects, or whose own name, were still in the page cache.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from backup.errors import FormatError, ObjectNotFound, StorageError
from backup.storage import keys
from backup.storage.repository import ObjectInfo

TEMP_SUFFIX = ".partial"
# os.link errors that mean "no second name here" (another filesystem, no hard links, too many):
# the caller copies instead. Any other error is the target's and is raised.
NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})
READ_BYTES = 1 << 20
COPY_BYTES = 4 << 20  # pieces of a hashed copy: few system calls, little memory


class FileRepository:
    """Objects are files under `root`; writes go to a temp file renamed into place (atomic)."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.url = url or root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"object key {key!r} escapes the repository")
        return self.root / key

    def _write(self, key: str, write: Callable[[Path], object]) -> None:
        target = self._path(key)
        temp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
        try:
            created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            write(temp)
            _fsync_file(temp)
            os.replace(temp, target)
            _fsync_dir(target.parent)
            for directory in created:  # deepest first: each new name lives in its parent
                _fsync_dir(directory.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {key} to {self.url}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        self._write(key, lambda temp: temp.write_bytes(data))

    def put_file(self, key: str, path: Path) -> None:
        self._write(key, lambda temp: shutil.copyfile(path, temp))

    def put_file_hashed(self, key: str, path: Path) -> str:
        """As put_file, reading `path` once: return the SHA-256 of the bytes written."""
        digest = hashlib.sha256()

        def copy(temp: Path) -> None:
            with open(path, "rb") as source, open(temp, "wb") as target:
                while piece := source.read(COPY_BYTES):
                    digest.update(piece)
                    target.write(piece)

        self._write(key, copy)
        return digest.hexdigest()

    def put_link(self, key: str, path: Path) -> bool:
        """Store the file `path` at `key` as a hard link (a second name for its bytes, nothing
        copied), made durable like any write; False, storing nothing, when `path` cannot be
        linked here (another filesystem, or one without hard links) or already has another name
        (the spool's file gets one: the first stage's, so no two stages ever share a file and
        damage to one stage's copy cannot reach another's). Raises StorageError.
        Only for files nobody rewrites in place (objects are immutable once written)."""

        def link(temp: Path) -> None:
            os.link(path, temp)
            # Checked after linking, so two stages linking at once both see 3 and both copy.
            if temp.stat().st_nlink > 2:
                raise OSError(errno.EMLINK, f"{path} already has another name")

        try:
            self._write(key, link)
        except StorageError as exc:
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno in NO_LINK:
                return False
            raise
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{key} is missing from {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.url}: {exc}") from exc

    def stream(self, key: str) -> Iterator[bytes]:
        try:
            with open(self._path(key), "rb") as source:
                while piece := source.read(READ_BYTES):
                    yield piece
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{key} is missing from {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.url}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot inspect {key} in {self.url}: {exc}") from exc

    def _files(self, prefix: str, start_after: str, temp: bool) -> Iterator[tuple[str, Path]]:
        """(key, path) of the complete files (with `temp`: the temp files) whose key starts with
        `prefix` and sorts after `start_after`; folders none of whose keys can are not entered."""
        if not self.root.exists():
            return
        for dirpath, dirs, files in os.walk(self.root):
            base = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if base == "." else base + "/"
            dirs[:] = [d for d in dirs if _may_hold(base + d + "/", prefix, start_after)]
            for name in files:
                key = base + name
                if name.endswith(TEMP_SUFFIX) == temp and key.startswith(prefix) and key > start_after:
                    yield key, Path(dirpath) / name

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        found = self._files(prefix, start_after, temp=False)
        return sorted((ObjectInfo(key, path.stat().st_size) for key, path in found), key=lambda o: o.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            # Units are deleted manifest first: that order must survive a crash too, so deleting
            # a manifest (or the index, or any other key) is durable before this returns. A data
            # object's deletion need not be: lost in a crash, it comes back as part of a unit
            # without a manifest, which the next run that lists the stage in full removes (one
            # reading the index looks only past its newest unit: until then the file takes disk
            # space, nothing reads it). (Releasing a 10M snapshot from the
            # spool spent a directory fsync on each of its hundreds of chunks.)
            if path.parent.exists() and not _is_unit_data(key):
                _fsync_dir(path.parent)
            for parent in path.parents:
                if parent == self.root or not parent.is_relative_to(self.root):
                    break
                if any(parent.iterdir()):
                    break
                parent.rmdir()
        except OSError as exc:
            raise StorageError(f"cannot delete {key} from {self.url}: {exc}") from exc

    def clean_incomplete(self, prefix: str = "", start_after: str = "") -> int:
        # A temp file lies beside its object, so a scoped clean walks only what `list` would.
        stale = list(self._files(prefix, start_after, temp=True))
        for _key, path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


def _may_hold(directory: str, prefix: str, start_after: str) -> bool:
    """Whether a key under `directory` (ending in "/") can start with `prefix` and sort after
    `start_after`: every key under it sorts before `start_after` when the directory does and is
    not a prefix of it."""
    if not (directory.startswith(prefix) or prefix.startswith(directory)):
        return False
    return not (directory < start_after and not start_after.startswith(directory))


def _is_unit_data(key: str) -> bool:
    """Whether `key` names a chunk, schema, changes or image object of a unit (not its manifest)."""
    try:
        return keys.parse_key(key).part in ("chunk", "schema", "changes", "image")
    except FormatError:
        return False


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
