"""Application settings translated into the backup package's own configuration.

`backup` never imports `api`, so this is the one place the two meet: the CLI and the GraphQL
admin operations both call it.
"""

from __future__ import annotations

from api.settings import Settings
from backup.config import BackupConfig
from backup.storage.codec import Key


def encryption_key(settings: Settings) -> Key | None:
    return Key(settings.backup_encryption_key) if settings.backup_encryption_key else None


def backup_config(settings: Settings) -> BackupConfig:
    """Owner URL, spool (stage 1), primary and replicas, endpoint and key."""
    return BackupConfig(
        database_url=settings.require_database_url(),
        spool_dir=settings.backup_spool_dir or settings.state_dir / "spool",
        primary_url=settings.backup_url, replica_urls=settings.backup_replica_urls,
        s3_endpoint_url=settings.s3_endpoint_url, key=encryption_key(settings))
