"""The backup package's error tree; third-party failures are translated into these where they enter."""

from __future__ import annotations


class BackupError(Exception):
    """Base of every failure the backup package reports on purpose; the message is for an operator."""


class ConfigError(BackupError):
    """A repository URL, key or option is malformed."""


class StorageError(BackupError):
    """A repository could not be read or written (after retries)."""


class ObjectNotFound(StorageError):
    """An object the format says must exist is missing."""


class ChecksumMismatch(StorageError):
    """An object's bytes do not match the SHA-256 recorded for it."""


class FormatError(BackupError):
    """An object is not in a format this version can read (bad JSON, newer major version...)."""


class DecryptionError(BackupError):
    """An encrypted object cannot be decrypted with the configured key."""


class SnapshotNotFound(BackupError):
    """No committed snapshot or segment has the requested id."""


class CaptureError(BackupError):
    """Change capture is missing, or the database refused an operation."""


class LockHeld(BackupError):
    """Another backup run holds the advisory lock."""


class DatabaseError(BackupError):
    """PostgreSQL is unreachable or refused a backup operation."""
