"""The backup package's own configuration; the CLI translates application settings into it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backup.storage.codec import Key

DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class BackupConfig:
    """database_url: superuser or owner URL. primary_url/replica_urls: stages 2 and 3.
    spool_dir: stage 1. key: client-side encryption key (None = plaintext objects)."""

    database_url: str
    spool_dir: Path
    primary_url: str | None = None
    replica_urls: tuple[str, ...] = ()
    s3_endpoint_url: str | None = None
    key: Key | None = field(default=None, repr=False)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    workers: int = DEFAULT_WORKERS
