"""Backup fixtures: stages on file:// and on the S3 test endpoint, a config per test."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from backup.capture.triggers import install
from backup.config import BackupConfig


@pytest.fixture
def file_config(seeded_database_url: str, tmp_path: Path) -> BackupConfig:
    """Spool, primary and one replica as local directories; small chunks to exercise chunking."""
    return BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                        primary_url=(tmp_path / "primary").as_uri(),
                        replica_urls=((tmp_path / "replica").as_uri(),), chunk_rows=150)


@pytest.fixture
def s3_config(seeded_database_url: str, tmp_path: Path, s3_endpoint_url: str, s3_bucket: str) -> BackupConfig:
    """Spool -> S3 primary -> S3 replica (two prefixes of the test bucket) over HTTP."""
    return BackupConfig(database_url=seeded_database_url, spool_dir=tmp_path / "spool",
                        primary_url=f"s3://{s3_bucket}/primary", replica_urls=(f"s3://{s3_bucket}/replica",),
                        s3_endpoint_url=s3_endpoint_url, chunk_rows=150)


async def install_capture(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await install(conn)
    finally:
        await conn.close()


async def change_lot(url: str, lot: str) -> None:
    """One captured change: dose 1's lot number, so the next incremental has a segment to cut."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE doses SET lot_number = $1 WHERE id = 1", lot)
    finally:
        await conn.close()
