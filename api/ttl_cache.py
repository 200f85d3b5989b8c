"""A small per-process cache of recent answers, with one computation per key at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Keeps each answer `ttl_s` seconds, at most `max_entries` of them.

    `get_or_compute` is single-flight: requests that miss the same key while it is being
    computed wait for that one computation instead of each starting their own, so a burst of
    dashboards after expiry costs the database one query, not one per request.
    """

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # Injected so tests step time instead of sleeping past the ttl.
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._pending: dict[K, asyncio.Future[V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self.max_entries:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + self.ttl_s, value)

    async def get_or_compute(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The cached answer, the one being computed, or a new one (which is then cached).

        A failed computation is not cached; its waiters see the same exception (or compute
        again themselves when the computing request was cancelled).
        """
        cached = self.get(key)
        if cached is not None:
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request itself was cancelled
                return await compute()  # the request computing it went away
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await compute()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: the waiters re-raise it
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
            self.put(key, value)
            return value
        finally:
            del self._pending[key]
