"""The errors of restore: what a restore refuses, and why, in words an operator can act on."""

from __future__ import annotations

from backup.errors import BackupError


class RestoreError(BackupError):
    """Base of every failure restore reports on purpose; its message is meant for an operator."""


class PredicateError(RestoreError):
    """A --where predicate or structured filter is not a single safe expression over the table."""


class RestorePlanError(RestoreError):
    """The restore cannot be planned: unknown table, no snapshot at or before T, bad columns."""


class MissingParents(RestoreError):
    """Restored rows reference parent rows that are gone now and were not asked to be restored."""
