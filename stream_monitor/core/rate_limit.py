"""One line per distinct cause per interval: the rest counted, and the count told with the cause's next line.

A client that cannot reach its broker retries about twenty times a second and reports every failure. Logged
as it comes, the one cause that matters floods the log; :class:`RateLimiter` lets the first report of a cause
through, counts its repeats for ``interval_s``, and lets the next one after that through with the count.

>>> from stream_monitor.core.clock import ManualClock
>>> clock = ManualClock(0.0)
>>> limiter = RateLimiter(10.0, clock)
>>> [limiter.admit("refused") for _ in range(3)]
[0, None, None]
>>> clock.advance(10.0); limiter.admit("refused"), limiter.admit("other cause")
(2, 0)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from stream_monitor.core.clock import Clock

DEFAULT_MAX_CAUSES: Final = 256


class RateLimiter:
    """Admits the first occurrence of a key per ``interval_s``; thread-safe (librdkafka calls from its threads).

    Parameters
    ----------
    interval_s
        Seconds during which repeats of an admitted key are only counted.
    clock
        Where the time comes from (a monotonic one in the service, a manual one in tests).
    max_causes
        Keys remembered at most; the least recently admitted are forgotten first (and would be admitted again).
    """

    def __init__(self, interval_s: float, clock: Clock, max_causes: int = DEFAULT_MAX_CAUSES) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if max_causes < 1:
            raise ValueError(f"max_causes must be >= 1, got {max_causes}")
        self.interval_s = interval_s
        self.clock = clock
        self.max_causes = max_causes
        self._causes: OrderedDict[str, list[float]] = OrderedDict()  # key -> [admitted at, repeats since]
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """``None`` to suppress this occurrence; else how many were suppressed since the key's last line."""
        now = self.clock.now()
        with self._lock:
            state = self._causes.get(key)
            if state is not None and now - state[0] < self.interval_s:
                state[1] += 1
                return None
            suppressed = 0 if state is None else int(state[1])
            self._causes[key] = [now, 0.0]
            self._causes.move_to_end(key)
            while len(self._causes) > self.max_causes:
                self._causes.popitem(last=False)
            return suppressed

    def pending(self) -> dict[str, int]:
        """Repeats counted and not yet told, per key (for a last line at shutdown)."""
        with self._lock:
            return {k: int(s[1]) for k, s in self._causes.items() if s[1]}
