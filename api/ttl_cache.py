"""A small per-process cache of recent answers, with one computation per key at a time."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
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
        # In put order, and every entry lives ttl_s from its put: the front expires first.
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._pending: dict[K, asyncio.Future[V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        entries = self._entries
        entries.pop(key, None)  # put again: to the back, with its new expiry
        if len(entries) >= self.max_entries:
            # Expired entries from the front, then the oldest live one if still full: each
            # entry is dropped once, so a put costs O(1) however many keys are live (the
            # verified-token cache sees one key per user). If the clock stepped back, expired
            # entries behind a live one wait for their turn; get never serves them.
            while entries and next(iter(entries.values()))[0] < now:
                entries.popitem(last=False)
            if len(entries) >= self.max_entries:
                entries.popitem(last=False)
        entries[key] = (now + self.ttl_s, value)

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
