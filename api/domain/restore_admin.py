"""Restore as an admin operation: the repository to read, the dry run, and which failures are
the caller's to fix (BAD_USER_INPUT) and which are the system's (an answer naming the cause).

The restore module reads storage with blocking calls, so it runs in a worker thread with its
own event loop; it connects with the owner's URL, never through the least-privilege pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from api.backup_config import encryption_key
from api.domain.backup_admin import NOT_CONFIGURED
from api.domain.errors import BadUserInput
from api.settings import Settings
from backup.errors import BackupError
from backup.restore.errors import MissingParents, PredicateError, RestorePlanError
from backup.restore.records import RestorePlan, RestoreRequest, plan_restore
from backup.restore.source import check_history as source_check_history
from backup.storage.codec import Key
from backup.storage.repository import Repository, open_repository

T = TypeVar("T")
# Refusals caused by the request itself (table, columns, filter, T, parents): the caller fixes them.
CALLER_ERRORS = (PredicateError, RestorePlanError, MissingParents)
# The restore module speaks the CLI's words; over GraphQL the same advice names the input fields.
_CLI_WORDS = (("--with-parents", "withParents: true"), ("--on-conflict overwrite",
              "onConflict: OVERWRITE"), ("--as-of", "asOf"), ("--columns", "columns"),
              ("--where", "filter"))


def explain(error: BackupError) -> str:
    """The error's message in the GraphQL input's terms."""
    message = str(error)
    for cli, graphql in _CLI_WORDS:
        message = message.replace(cli, graphql)
    return message


@dataclass(frozen=True)
class RestoreNotConfigured:
    message: str = NOT_CONFIGURED


@dataclass(frozen=True)
class RestoreFailed:
    message: str


@dataclass(frozen=True)
class Source:
    """Where restores read history from: the primary repository and its key."""

    database_url: str
    repo: Repository
    key: Key | None


def source(settings: Settings) -> Source | None:
    """The configured repository, or None when VAXVAULT_BACKUP_URL is not set."""
    if not settings.backup_url:
        return None
    key = encryption_key(settings)
    return Source(settings.require_database_url(),
                  open_repository(settings.backup_url, settings.s3_endpoint_url), key)


async def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine of the backup package on its own loop in a worker thread."""
    return await asyncio.to_thread(lambda: asyncio.run(work()))


async def check_history(found: Source, request: RestoreRequest) -> RestoreFailed | None:
    """None when the restore could build the rows as at the request's T (from the repository and
    the live change log, as the restore itself does); BadUserInput when no snapshot is old enough
    or the history has a hole before T; RestoreFailed when the repository or database cannot be
    read."""
    try:
        await source_check_history(found.database_url, found.repo, found.key, request.as_of,
                                   request.use_live_log)
    except RestorePlanError as exc:
        raise BadUserInput(f"asOf: {explain(exc)}") from exc
    except BackupError as exc:
        return RestoreFailed(explain(exc))
    return None


async def plan(settings: Settings,
               request: RestoreRequest) -> RestorePlan | RestoreNotConfigured | RestoreFailed:
    """The dry run: counts per action and a sample diff; nothing is written.

    Raises BadUserInput when the request cannot be planned (see CALLER_ERRORS).
    """
    found = source(settings)
    if found is None:
        return RestoreNotConfigured()
    try:
        return await in_thread(lambda: plan_restore(found.database_url, found.repo, found.key,
                                                    request))
    except CALLER_ERRORS as exc:
        raise BadUserInput(explain(exc)) from exc
    except BackupError as exc:
        return RestoreFailed(explain(exc))
