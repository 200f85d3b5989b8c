"""Concurrent HTTP traffic against a served API, with every outcome recorded.

Reliability tests read the record: statuses, counts, error bodies. The default load is
VAXVAULT_RELIABILITY_REQUESTS requests (1000 unless set; e.g. 20000 for a soak run).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RELIABILITY_REQUESTS = int(os.environ.get("VAXVAULT_RELIABILITY_REQUESTS") or 1000)


@dataclass(frozen=True)
class Call:
    """One request to send: headers and a JSON body for POST /graphql."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    started: float  # monotonic
    seconds: float
    status: int  # 0 when the request itself failed (connection refused, timeout)
    body: str


@dataclass
class Record:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.started < end]


async def drive(base_url: str, calls: list[Call], *, concurrency: int, seconds: float | None = None,
                requests: int | None = None, record: Record | None = None, timeout: float = 30.0,
                stop: asyncio.Event | None = None) -> Record:
    """Send `calls` round-robin from `concurrency` clients: `requests` of them in all, or for
    `seconds`, or until `stop` (tests assert on counts, so most give `requests` or `stop`)."""
    record = record if record is not None else Record()
    rotation = itertools.cycle(calls)
    deadline = time.monotonic() + seconds if seconds is not None else None
    sent = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    def more() -> bool:
        if (stop and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline):
            return False
        return requests is None or next(sent) < requests

    async def client(http: httpx.AsyncClient) -> None:
        while more():
            call = next(rotation)
            started = time.monotonic()
            try:
                response = await http.post("/graphql", json=call.body, headers=call.headers)
                status, body = response.status_code, response.text
            except httpx.HTTPError as exc:
                status, body = 0, f"{type(exc).__name__}: {exc}"
            record.outcomes.append(Outcome(started, time.monotonic() - started, status, body))

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return record
