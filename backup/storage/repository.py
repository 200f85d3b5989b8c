"""The storage interface every repository backend implements, and opening one from its URL.

Keys are relative to the repository's root (the URL's path or bucket prefix) and use "/".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from backup.errors import ConfigError


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class Repository(Protocol):
    """One storage backend. Every method raises StorageError (ObjectNotFound for a missing key)."""

    url: str

    def put(self, key: str, data: bytes) -> None:
        """Store `data` at `key` atomically (a reader sees all of it or nothing)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file at `key`, streaming (multipart for large files)."""

    def get(self, key: str) -> bytes:
        """The whole object; ObjectNotFound when absent."""

    def stream(self, key: str) -> Iterator[bytes]:
        """The object in pieces, for large objects; ObjectNotFound when absent."""

    def head(self, key: str) -> ObjectInfo | None:
        """Size of the object, or None when absent."""

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        """Every complete object whose key starts with `prefix` and sorts after `start_after`,
        sorted by key (the listing index reads only what is newer than it this way)."""

    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    def clean_incomplete(self, prefix: str = "", start_after: str = "") -> int:
        """Abort partial uploads (multipart, temp files) left by a killed run whose key starts with
        `prefix` and sorts after `start_after` (as in `list`); return how many."""


def open_repository(url: str, s3_endpoint_url: str | None = None) -> Repository:
    """The backend for `url` (file:///path or s3://bucket/prefix[?endpoint=...&region=...])."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from backup.storage.file import FileRepository

        if not parts.path or parts.netloc not in ("", "localhost"):
            raise ConfigError(f"repository URL {url!r} must be file:///absolute/path")
        return FileRepository(Path(parts.path), url=url)
    if parts.scheme == "s3":
        from backup.storage.s3 import S3Repository

        if not parts.netloc:
            raise ConfigError(f"repository URL {url!r} has no bucket; use s3://bucket/prefix")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(f"repository URL {url!r} has unknown parameter(s) {names}; "
                              "allowed: endpoint, region")
        return S3Repository(bucket=parts.netloc, prefix=parts.path.strip("/"),
                            endpoint_url=query.get("endpoint") or s3_endpoint_url,
                            region=query.get("region"), url=url)
    raise ConfigError(f"repository URL {url!r} must start with s3:// or file://")
