"""Performance windows: spans of prediction time that close on an expected labelled count or on time.

Prediction time is cut into fixed slices, and consecutive slices gather into the open window. Once the
watermark has passed a slice, the window closes after it if it holds ``target`` predictions (the labelled
count wanted, over the share of predictions expected to be labelled) or spans ``max_seconds``, whichever
comes first: a model scoring 200 predictions a second gets a verdict every ten seconds of predictions, a
quiet one still every fifteen minutes. Closing at slice boundaries makes the cut depend on the data, not on
how it was batched, so every replay and the Kafka service cut the same windows.

A closed window keeps taking the labels of its predictions (late labels revise it) until its owner has
judged it and :meth:`CountOrTimeWindows.pop` drops it; labels for a dropped window have no window to go to
(the owner's coarser label-health buckets still count them). At most ``max_pending`` closed windows wait: past
that the oldest is handed out as if its labels were complete, so memory stays bounded when labels never come.

>>> windows = CountOrTimeWindows(list, slice_seconds=1.0, target=3, max_seconds=10.0, max_pending=8)
>>> for ts in [0.1, 0.5, 1.2, 1.7, 2.5]:
...     windows.slot(windows.slice_of(ts)).append(ts)
>>> [(w.start_ts, w.end_ts, w.bucket) for w in windows.close(watermark=3.0, counts=len)]
[(0.0, 2.0, [0.1, 0.5, 1.2, 1.7])]
>>> windows.slot(windows.slice_of(0.7)).append(0.7)  # a late label revises the closed window
>>> windows.closed[0].bucket
[0.1, 0.5, 1.2, 1.7, 0.7]
>>> [(w.start_ts, w.end_ts) for w in windows.close(watermark=30.0, counts=len)]  # time runs out
[(2.0, 12.0)]
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from stream_monitor.pipeline.windows import slice_boundary, slices_in

B = TypeVar("B")

__all__ = ["ClosedWindow", "CountOrTimeWindows"]


@dataclass(eq=False)  # a window is itself, whatever its bucket holds
class ClosedWindow(Generic[B]):
    first: int  # its first slice
    stop: int  # the slice after its last
    start_ts: float
    end_ts: float
    bucket: B


class CountOrTimeWindows(Generic[B]):
    """Slices of prediction time gathered into windows; ``new`` makes an empty bucket, ``merge`` (default:
    ``into += other``) adds one slice's bucket into a window's."""

    def __init__(
        self,
        new: Callable[[], B],
        slice_seconds: float,
        target: int,
        max_seconds: float,
        max_pending: int,
        merge: Callable[[B, B], None] | None = None,
    ) -> None:
        if not slice_seconds > 0 or not max_seconds >= slice_seconds:
            raise ValueError(f"need 0 < slice_seconds <= max_seconds, got {slice_seconds}, {max_seconds}")
        if target < 1 or max_pending < 1:
            raise ValueError(f"target and max_pending must be >= 1, got {target}, {max_pending}")
        self.new = new
        self.slice_seconds = slice_seconds
        self.target = target
        self.max_seconds = max_seconds
        self.max_pending = max_pending
        self.merge = merge or _extend
        self.slices: dict[int, B] = {}  # slices of the open window (and beyond)
        self.open_start: int | None = None  # first slice of the open window
        self.frontier: int | None = None  # first slice after the last closed window
        self.closed: list[ClosedWindow[B]] = []  # sorted by start; waiting to be judged
        self._starts: list[int] = []

    def slice_of(self, ts: float) -> int:
        return math.floor(ts / self.slice_seconds)

    def slot(self, k: int) -> B:
        """The bucket of predictions (or their labels) in slice ``k`` (see :meth:`slice_of`), or a
        throwaway one when their window was already judged and dropped."""
        if self.frontier is not None and k < self.frontier:
            i = bisect.bisect_right(self._starts, k) - 1
            if i >= 0 and k < self.closed[i].stop:
                return self.closed[i].bucket
            return self.new()
        if self.open_start is None or k < self.open_start:
            self.open_start = k
        bucket = self.slices.get(k)
        if bucket is None:
            bucket = self.slices[k] = self.new()
        return bucket

    def close(
        self, watermark: float, counts: Callable[[B], int], final: bool = False
    ) -> list[ClosedWindow[B]]:
        """Close every window the watermark completed (all of them at ``final``); returns the new ones."""
        out: list[ClosedWindow[B]] = []
        ss = self.slice_seconds
        complete = slice_boundary(watermark, ss) if math.isfinite(watermark) else None
        while self.open_start is not None and self.slices:
            start = self.open_start
            limit = start + slices_in(self.max_seconds, ss)  # the slice where time runs out
            cut: int | None = None
            total = 0
            for k in sorted(self.slices):
                if k >= limit or (not final and (complete is None or k >= complete)):
                    break
                total += counts(self.slices[k])
                if total >= self.target:
                    cut = k + 1
                    break
            if cut is None:
                if complete is not None and limit <= complete:
                    cut = limit
                elif final:
                    cut = min(limit, max(self.slices) + 1)
                else:
                    break
            bucket = self.new()
            for k in [k for k in self.slices if k < cut]:
                self.merge(bucket, self.slices.pop(k))
            window = ClosedWindow(start, cut, start * ss, cut * ss, bucket)
            self.closed.append(window)
            self._starts.append(start)
            out.append(window)
            self.frontier = cut
            # the next window starts at the next prediction (a quiet stretch opens no empty windows)
            self.open_start = min(self.slices) if self.slices else None
        return out

    def pending(self) -> Iterator[ClosedWindow[B]]:
        """Closed windows in order of their spans."""
        return iter(list(self.closed))

    def overflow(self) -> list[ClosedWindow[B]]:
        """The oldest closed windows beyond ``max_pending``."""
        return self.closed[: max(len(self.closed) - self.max_pending, 0)]

    def pop(self, window: ClosedWindow[B]) -> None:
        """Forget a judged window."""
        i = self.closed.index(window)
        del self.closed[i]
        del self._starts[i]

    def snapshot(self, encode: Callable[[B], Any]) -> dict[str, Any]:
        """Plain data, each bucket through ``encode``."""
        return {
            "slices": {str(k): encode(b) for k, b in self.slices.items()},
            "open_start": self.open_start,
            "frontier": self.frontier,
            "closed": [[w.first, w.stop, encode(w.bucket)] for w in self.closed],
        }

    def restore(self, state: dict[str, Any], decode: Callable[[Any], B]) -> None:
        """Replace the state with one from :meth:`snapshot` (same slice length)."""
        ss = self.slice_seconds
        self.slices = {int(k): decode(v) for k, v in state["slices"].items()}
        self.open_start = None if state["open_start"] is None else int(state["open_start"])
        self.frontier = None if state["frontier"] is None else int(state["frontier"])
        self.closed = [ClosedWindow(int(a), int(b), a * ss, b * ss, decode(v)) for a, b, v in state["closed"]]
        self._starts = [w.first for w in self.closed]


def _extend(into: B, other: B) -> None:
    into += other  # type: ignore[operator]
