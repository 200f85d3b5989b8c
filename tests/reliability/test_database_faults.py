"""PostgreSQL restarted under load, and an exhausted pool: fail fast and clearly, then recover.

The restart uses a cluster of its own (not the shared test server), stopped and started again
on the same port while clients keep sending requests.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
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
ADMIN = {"Authorization": "Bearer " + mint_token(JWT_SECRET, Role.ADMIN, sub="faults-admin")}
DISTRICTS = Call({"query": "{ recipients(first: 5) { edges { node { id } } } districts { id } }"},
                 ADMIN)
OUTAGE_S = 3.0
FAIL_FAST_S = 6.0  # a request during the outage answers within this, not after a hang
RECOVERY_S = 15.0


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
    with live_server(settings) as base:
        load = asyncio.create_task(drive(base, [DISTRICTS], seconds=120, concurrency=4,
                                         record=record, stop=stop, timeout=30))
        await asyncio.sleep(1.5)
        down_at = time.monotonic()
        await asyncio.to_thread(own_cluster.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(own_cluster.start)
        up_at = time.monotonic()
        recovered_at = None
        while time.monotonic() < up_at + RECOVERY_S:
            await asyncio.sleep(0.2)
            recent = [o for o in record.outcomes if o.started > up_at]
            if len(recent) >= 20 and all(succeeded(o) for o in recent[-10:]):
                recovered_at = recent[-10].started
                break
        stop.set()
        await load
    before = [o for o in record.outcomes if o.started + o.seconds < down_at]
    during = record.between(down_at, up_at)
    assert before and all(succeeded(o) for o in before)
    failures = [o for o in during if not succeeded(o)]
    assert failures, "no request noticed the outage"
    for outcome in failures:
        assert_clear_failure(outcome)
        assert outcome.seconds < FAIL_FAST_S, outcome
    assert recovered_at is not None, [(o.status, o.body[:120]) for o in record.outcomes[-5:]]
    print(f"restart: {len(record.outcomes)} requests, {len(failures)} failed during the "
          f"{OUTAGE_S:.0f} s outage (slowest {max(o.seconds for o in failures):.2f} s), "
          f"recovered {recovered_at - up_at:.2f} s after the restart")


async def test_exhausted_pool_queues_boundedly(settings: Settings, postgres_url: str) -> None:
    """Every connection blocked on a lock: requests wait or fail within bounds, then recover."""
    settings = settings.with_overrides(pool_max_size=2, statement_timeout_ms=1500)
    blocker = await asyncpg.connect(settings.require_database_url())
    try:
        with live_server(settings) as base:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE recipients IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            jammed = asyncio.create_task(drive(base, [DISTRICTS], seconds=0.5, concurrency=20,
                                               timeout=30))
            await asyncio.sleep(2.0)
            await transaction.rollback()
            record = await jammed
            elapsed = time.monotonic() - started
            after = await drive(base, [DISTRICTS], seconds=1.0, concurrency=4)
    finally:
        await blocker.close()
    assert len(record.outcomes) >= 20
    assert any(o.seconds > 1.0 for o in record.outcomes), "the lock did not hold anything up"
    for outcome in record.outcomes:
        if not succeeded(outcome):
            assert_clear_failure(outcome)
    # Bounded: every queued request ends (answer or clear error); none waits without limit.
    slowest = max(o.seconds for o in record.outcomes)
    assert slowest < 25, f"a queued request took {slowest:.1f} s"
    assert elapsed < 60, f"queued requests took {elapsed:.1f} s to drain"
    assert after.outcomes and all(succeeded(o) for o in after.outcomes)
