"""Segment values of feature events, waiting (bounded) for their predictions, by event id.

Predictions do not carry features, so per-segment error rates need each prediction's segment values from its
feature event. Feature events usually come first, milliseconds earlier: their segment codes wait here, keyed by
the same 64-bit event-id hash the joiner uses, for at most ``ttl_seconds`` of event time and ``max_pending``
entries (oldest batches go first; both evictions are counted). The codes of several segment features are packed
into one mixed-radix integer.

>>> lookup = SegmentLookup(radices=[3, 4], max_pending=100, ttl_seconds=60.0)
>>> lookup.add(np.array([11, 12], dtype=np.uint64), np.array([0.0, 1.0]), np.array([[2, 3], [0, 1]]))
>>> lookup.take(np.array([12, 99], dtype=np.uint64)).tolist()
[3, -1]
>>> lookup.unpack(np.array([3]), 1).tolist()
[1]
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray


class SegmentLookup:
    def __init__(self, radices: list[int], max_pending: int, ttl_seconds: float) -> None:
        if not radices or min(radices) < 1:
            raise ValueError("radices must be a non-empty list of positive sizes")
        if max_pending < 1 or not ttl_seconds > 0:
            raise ValueError("max_pending must be >= 1 and ttl_seconds > 0")
        self.radices = list(radices)
        self.max_pending = max_pending
        self.ttl_seconds = ttl_seconds
        self._weights = np.cumprod([1, *self.radices[:-1]]).astype(np.int64)
        self._map: dict[int, int] = {}
        self._batches: deque[tuple[float, list[int]]] = deque()
        self.evicted = 0
        self.missing = 0

    def pack(self, codes: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.asarray(codes @ self._weights, dtype=np.int64)

    def unpack(self, combined: NDArray[np.int64], i: int) -> NDArray[np.int64]:
        return np.asarray((combined // self._weights[i]) % self.radices[i], dtype=np.int64)

    def add(self, keys: NDArray[np.uint64], ts: NDArray[np.float64], codes: NDArray[np.int64]) -> None:
        if len(keys) == 0:
            return
        batch = keys.tolist()
        self._map.update(zip(batch, self.pack(codes).tolist(), strict=True))
        self._batches.append((float(ts.max()), batch))
        horizon = float(ts.max()) - self.ttl_seconds
        while self._batches and (len(self._map) > self.max_pending or self._batches[0][0] < horizon):
            _, old = self._batches.popleft()
            before = len(self._map)
            for k in old:
                self._map.pop(k, None)
            self.evicted += before - len(self._map)

    def take(self, keys: NDArray[np.uint64]) -> NDArray[np.int64]:
        """The packed codes of these events (removed: each is needed once), -1 where unknown."""
        out = np.fromiter(
            map(self._map.pop, keys.tolist(), itertools.repeat(-1)), dtype=np.int64, count=len(keys)
        )
        self.missing += int((out < 0).sum())
        return out

    def __len__(self) -> int:
        return len(self._map)

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches": [
                [t, [[k, self._map[k]] for k in keys if k in self._map]] for t, keys in self._batches
            ],
            "evicted": self.evicted,
            "missing": self.missing,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._map.clear()
        self._batches.clear()
        for t, pairs in state["batches"]:
            self._map.update((int(k), int(v)) for k, v in pairs)
            self._batches.append((float(t) if math.isfinite(t) else -math.inf, [int(k) for k, _ in pairs]))
        self.evicted, self.missing = int(state["evicted"]), int(state["missing"])
