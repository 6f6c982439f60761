"""Wall-clock access behind an object, so tests can pass a manual clock.

Event-time logic never reads a clock: windows, joins and detectors take timestamps from the events. Only
processing-time facts (``detected_at``, processing latency) use a :class:`Clock`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to.

    >>> c = ManualClock(10.0); c.advance(2.5); c.now()
    12.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class MonotonicClock:
    """Seconds on a clock that never goes back (``time.monotonic``): for intervals, never for timestamps."""

    def now(self) -> float:
        return time.monotonic()
