"""PostgreSQL restarted under load, and an exhausted pool: fail fast and clearly, then recover.

The restart uses a cluster of its own (not the shared test server), stopped and started again
on the same port while clients keep sending requests.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from api.auth import mint_token
from api.db.migrate import migrate
from api.embedded_postgres import EmbeddedPostgres
from api.principal import Role
from api.settings import Settings
from tests.conftest import JWT_SECRET
from tests.live_server import live_server
from tests.reliability.traffic import Call, Outcome, Record, drive

# Reference data may be served from memory; a recipients page always asks the database.
PAGE = {"query": "{ recipients(first: 5) { edges { node { id } } } districts { id } }"}
# Bounds on a hang, not measurements: each phase waits for a count of outcomes or a state.
PHASE_TIMEOUT_S = 120


def districts_call() -> Call:
    """The call, with a token minted now (per test, never at import)."""
    return Call(PAGE, {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.ADMIN,
                                                               sub="faults-admin")})


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Poll `condition` until it holds; fail after PHASE_TIMEOUT_S naming `what`."""
    try:
        async with asyncio.timeout(PHASE_TIMEOUT_S):
            while True:
                held = condition()
                if held if isinstance(held, bool) else await held:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {PHASE_TIMEOUT_S} s") from None


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedPostgres]:
    with tempfile.TemporaryDirectory(prefix="vaxvault-restart-") as root:
        cluster = EmbeddedPostgres(Path(root) / "pg", throwaway=True)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.destroy()


def succeeded(outcome: Outcome) -> bool:
    return outcome.status == 200 and '"errors"' not in outcome.body


def assert_clear_failure(outcome: Outcome) -> None:
    """A failed request is a JSON error a person can read, never a 500 or a stack trace."""
    assert outcome.status in (200, 503), (outcome.status, outcome.body[:300])
    payload = json.loads(outcome.body)
    messages = [e["message"] for e in payload.get("errors", [])] or [payload.get("reason", "")]
    assert all(m and "Traceback" not in m for m in messages), messages


async def test_postgres_restart_under_load(own_cluster: EmbeddedPostgres, tmp_path: Path) -> None:
    url = own_cluster.url("postgres")
    await migrate(url)
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET, state_dir=tmp_path / "state",
                        pool_max_size=4, statement_timeout_ms=2000)
    record = Record()
    stop = asyncio.Event()
    call = districts_call()
    with live_server(settings) as base:
        load = asyncio.create_task(drive(base, [call], concurrency=4, record=record, stop=stop,
                                         timeout=30))
        await until(lambda: len(record.outcomes) >= 20, "20 requests before the outage")
        down_at = time.monotonic()
        await asyncio.to_thread(own_cluster.stop)
        # While it is down, requests keep ending (clear failures), not hanging.
        await until(lambda: sum(not succeeded(o) for o in record.outcomes if o.started > down_at)
                    >= 10, "10 failed requests during the outage")
        await asyncio.to_thread(own_cluster.start)
        up_at = time.monotonic()
        await until(lambda: (lambda recent: len(recent) >= 20 and all(
            succeeded(o) for o in recent[-10:]))([o for o in record.outcomes if o.started > up_at]),
            "10 successes in a row after the restart")
        stop.set()
        await load
    before = [o for o in record.outcomes if o.started + o.seconds < down_at]
    during = record.between(down_at, up_at)
    assert len(before) >= 20 and all(succeeded(o) for o in before)
    failures = [o for o in during if not succeeded(o)]
    assert len(failures) >= 10, "no request noticed the outage"
    for outcome in failures:
        assert_clear_failure(outcome)
    print(f"restart: {len(record.outcomes)} requests, {len(failures)} failed during the outage")


async def test_exhausted_pool_queues_boundedly(settings: Settings, postgres_url: str) -> None:
    """Every connection blocked on a lock: requests wait or fail clearly, then recover."""
    settings = settings.with_overrides(pool_max_size=2, statement_timeout_ms=1500)
    blocker = await asyncpg.connect(settings.require_database_url())
    call = districts_call()
    try:
        with live_server(settings) as base:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE recipients IN ACCESS EXCLUSIVE MODE")
            jammed = asyncio.create_task(drive(base, [call], requests=20, concurrency=20,
                                               timeout=30))
            # The state the test is about: the API's requests wait on the lock.
            await until(lambda: blocker.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"),
                "an API request waiting on the lock")
            await transaction.rollback()
            async with asyncio.timeout(PHASE_TIMEOUT_S):  # bounded: every queued request ends
                record = await jammed
            after = await drive(base, [call], requests=20, concurrency=4)
    finally:
        await blocker.close()
    assert len(record.outcomes) == 20
    for outcome in record.outcomes:
        if not succeeded(outcome):
            assert_clear_failure(outcome)
    assert len(after.outcomes) == 20 and all(succeeded(o) for o in after.outcomes)
