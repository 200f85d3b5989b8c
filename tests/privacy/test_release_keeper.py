"""The release keeper: one computation at a time, stale answers instead of waits, no poisoning."""

from __future__ import annotations

import asyncio

import pytest

from api.domain.disclosure import Counts
from api.domain.release import Release, ReleaseKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _release(doses: int, min_cell: int = 10) -> Release:
    return Release.protected({(None, None, None): Counts(doses, doses)}, min_cell)


async def test_readers_get_the_previous_release_while_one_request_refreshes() -> None:
    clock = Clock()
    keeper = ReleaseKeeper(ttl_s=60, clock=clock)
    calls = 0

    async def first() -> Release:
        nonlocal calls
        calls += 1
        return _release(100)

    assert (await keeper.get(first, 10)).cells[(None, None, None)].doses == 100
    clock.now = 30
    assert (await keeper.get(first, 10)).cells[(None, None, None)].doses == 100
    assert calls == 1

    clock.now = 61
    gate = asyncio.Event()

    async def slow() -> Release:
        await gate.wait()
        return _release(200)

    refreshing = asyncio.create_task(keeper.get(slow, 10))
    await asyncio.sleep(0)
    # Stale, not waiting: the refresh is under way in another request.
    assert (await keeper.get(slow, 10)).cells[(None, None, None)].doses == 100
    gate.set()
    assert (await refreshing).cells[(None, None, None)].doses == 200
    assert (await keeper.get(first, 10)).cells[(None, None, None)].doses == 200
    assert calls == 1


async def test_the_first_computation_is_shared_and_a_failure_is_not_kept() -> None:
    keeper = ReleaseKeeper(ttl_s=60, clock=Clock())
    gate = asyncio.Event()

    async def broken() -> Release:
        await gate.wait()
        raise RuntimeError("database went away")

    first = asyncio.create_task(keeper.get(broken, 10))
    second = asyncio.create_task(keeper.get(broken, 10))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, second):
        with pytest.raises(RuntimeError, match="went away"):
            await task

    async def works() -> Release:
        return _release(5)

    assert (await keeper.get(works, 10)).suppressed == frozenset({(None, None, None)})
    # Another minimum cell is another release, never the cached one.
    assert (await keeper.get(lambda: asyncio.sleep(0, _release(5, 3)), 3)).suppressed == frozenset()
