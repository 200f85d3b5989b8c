"""A clock the test moves by hand, for code that takes an injected clock instead of sleeping."""

from __future__ import annotations


class SteppedClock:
    """Monotonic seconds; `now` only changes when the test changes it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
