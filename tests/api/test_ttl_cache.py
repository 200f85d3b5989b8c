"""The per-process answer cache: expiry and one computation per key at a time."""

import asyncio

import pytest

from api.ttl_cache import TtlCache
from tests.clock import SteppedClock


async def test_concurrent_misses_share_one_computation() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl_s=60)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(cache.get_or_compute("k", compute) for _ in range(8)))
    assert results == [42] * 8
    assert calls == 1
    assert await cache.get_or_compute("k", compute) == 42 and calls == 1


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl_s=60)

    async def fail() -> int:
        await asyncio.sleep(0.02)
        raise RuntimeError("database timeout")

    outcomes = await asyncio.gather(*(cache.get_or_compute("k", fail) for _ in range(3)),
                                    return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert cache.get("k") is None

    async def succeed() -> int:
        return 7

    assert await cache.get_or_compute("k", succeed) == 7


async def test_waiters_compute_themselves_when_the_computing_request_is_cancelled() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl_s=60)
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(10)
        return 1

    async def quick() -> int:
        return 2

    first = asyncio.create_task(cache.get_or_compute("k", slow))
    await started.wait()
    waiter = asyncio.create_task(cache.get_or_compute("k", quick))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await waiter == 2


def test_entries_expire_after_their_ttl_and_not_before() -> None:
    clock = SteppedClock()
    cache: TtlCache[str, int] = TtlCache(ttl_s=5, clock=clock)
    cache.put("k", 1)
    clock.now += 5
    assert cache.get("k") == 1, "an entry lives its whole ttl"
    clock.now += 0.001
    assert cache.get("k") is None


def test_a_full_cache_drops_expired_entries_before_live_ones() -> None:
    clock = SteppedClock()
    cache: TtlCache[str, int] = TtlCache(ttl_s=5, max_entries=2, clock=clock)
    cache.put("old", 1)
    clock.now += 3
    cache.put("live", 2)
    clock.now += 3  # "old" has expired, "live" has not
    cache.put("new", 3)
    assert (cache.get("old"), cache.get("live"), cache.get("new")) == (None, 2, 3)


class _CountedKey:
    """A key that counts how often the cache hashes keys: the work a put does."""

    hashed = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        _CountedKey.hashed += 1
        return self.n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CountedKey) and other.n == self.n


def test_a_full_cache_of_live_entries_puts_in_constant_time() -> None:
    """Beyond max_entries live keys (a verified token per user per minute), every miss used to
    rebuild the whole cache: a put must touch a bounded number of keys, however many are live,
    and still keep the newest max_entries."""
    clock = SteppedClock()
    size = 2000
    cache: TtlCache[_CountedKey, int] = TtlCache(ttl_s=60, max_entries=size, clock=clock)
    for n in range(size):
        cache.put(_CountedKey(n), n)
    _CountedKey.hashed = 0
    for n in range(size, 2 * size):
        clock.now += 0.001
        cache.put(_CountedKey(n), n)
    assert _CountedKey.hashed <= 4 * size, _CountedKey.hashed
    assert cache.get(_CountedKey(size - 1)) is None
    assert all(cache.get(_CountedKey(n)) == n for n in range(size, 2 * size))
    # Half of them expire: the next put drops those (from the front), no live one.
    clock.now += 60 - size * 0.001 / 2
    cache.put(_CountedKey(-1), -1)
    assert cache.get(_CountedKey(2 * size - 1)) == 2 * size - 1
    assert len(cache._entries) <= size // 2 + 2
