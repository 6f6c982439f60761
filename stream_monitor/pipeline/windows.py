"""Event-time windows built from time slices, so partials from many partitions merge deterministically.

Stage 1 (:class:`SliceFolder`, one per input partition, or one for a whole replay) folds rows into sketches of
fixed time *slices* (``floor(ts / slice_seconds)``) and hands out every slice the watermark (``max ts seen -
allowed lateness``) has passed. Stage 2 (:class:`WindowAssembler`, one per model) merges slices, in order, into the
current window and closes it when it holds ``max_events`` events or spans ``max_seconds``, whichever comes first.

Because a window is a run of whole slices and a slice's content does not depend on which partition carried an
event, one worker and many workers close identical windows.

Before rows are folded, :meth:`SliceFolder.screen` refuses two kinds of event time, which the caller
dead-letters with their reason (never folded, never dropped unsaid):

* ``future_timestamp``: more than ``max_future_seconds`` ahead of the clock, refused before it can move the
  watermark (one clock skewed an hour ahead would otherwise make every later event late). The clock is the
  wall clock the service passes in; a replay has none, so there the reference is the later of the latest
  event time folded and the median event time of the batch (a batch mostly ahead of the stream is believed).
* ``late_event``: in a slice before the one the watermark had reached when the event arrived: later than
  ``allowed_lateness_seconds`` (plus up to a slice). The watermark is taken event by event in arrival order
  (the latest admitted time before the event), so whether an event is late does not depend on how its
  partition's messages were cut into batches.

Repeated event ids within the open slices are suppressed and counted (:class:`~stream_monitor.pipeline.
recent_ids.RecentIds`).

>>> folder = SliceFolder(slice_seconds=10.0, allowed_lateness=0.0)
>>> ids = folder.slice_ids(np.array([5.0, 12.0, 3.0])); ids
array([0, 1, 0])
>>> order, starts, slices = folder.segments(ids); order.tolist(), starts.tolist(), slices
([0, 2, 1], [0, 2], [0, 1])
>>> skewed = SliceFolder(slice_seconds=10.0, allowed_lateness=5.0, max_future=60.0)
>>> verdict = skewed.screen(np.array([100.0, 3700.0, 104.0, 80.0]), wall=110.0); verdict.tolist()
[0, 1, 0, 2]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.alerts import WindowInfo
from stream_monitor.pipeline.recent_ids import RecentIds
from stream_monitor.stats.sketch_layout import SketchLayout
from stream_monitor.stats.sketches import WindowSketch

SLICES_PER_WINDOW_AT_REFERENCE_RATE: Final = 10
# A slice is the unit a partition worker ships to stage 2, so slices shorter than this would flood the
# internal topic on a busy stream; the price is that a count-closed window may overshoot max_events by up to
# a quarter second of traffic.
MIN_SLICE_SECONDS: Final = 0.25


def slice_seconds_for(
    max_events: int,
    max_seconds: float,
    events_per_second: float,
    configured: float | None = None,
    phase_seconds: tuple[float, ...] = (),
) -> float:
    """Slice length: about a tenth of the time the reference rate needs to fill ``max_events``, dividing
    ``max_seconds`` evenly, so a count-closed window overshoots ``max_events`` by at most about a tenth.

    With the phase lengths of the model's cycles (``phase_seconds``) the slice also divides each of them, so
    a slice lies within one phase and a window's phase weights are exact (when their common divisor with
    ``max_seconds`` is not below ``MIN_SLICE_SECONDS``; otherwise slices straddling phases are split by time).

    >>> slice_seconds_for(max_events=5000, max_seconds=300.0, events_per_second=1000.0)
    0.5
    >>> slice_seconds_for(2000, 300.0, 5.0), slice_seconds_for(2000, 300.0, 5.0, phase_seconds=(200.0,))
    (37.5, 33.333333333333336)
    """
    if configured is not None:
        return configured
    if events_per_second > 0:
        raw = max_events / events_per_second / SLICES_PER_WINDOW_AT_REFERENCE_RATE
    else:
        raw = max_seconds / 30.0
    raw = min(max(raw, MIN_SLICE_SECONDS), max_seconds)
    span = _common_divisor(max_seconds, *phase_seconds) if phase_seconds else max_seconds
    if span < MIN_SLICE_SECONDS:
        span = max_seconds
    return span / math.ceil(span / raw)


def _common_divisor(*seconds: float) -> float:
    """The longest span every one of ``seconds`` is a whole number of (read as fractions of denominator at
    most 1000, so 86400 / 7 is exact)."""
    fractions = [Fraction(s).limit_denominator(1000) for s in seconds]
    numerator = math.gcd(*(f.numerator for f in fractions))
    denominator = math.lcm(*(f.denominator for f in fractions))
    return numerator / denominator


# Slice lengths such as 300 / 7 s are not exact in binary: boundaries are compared in whole slices, with this
# tolerance, so that whether a slice is complete never depends on how far one batch moved the watermark.
_SLICE_TOLERANCE: Final = 1e-9


def slice_boundary(watermark: float, slice_seconds: float) -> int:
    """The first slice a watermark has not passed: every slice before it is complete.

    >>> slice_boundary(7 * (300 / 7), 300 / 7)  # 300 s is seven slices of 300/7 s, rounding aside
    7
    """
    return math.floor(watermark / slice_seconds + _SLICE_TOLERANCE)


def slices_in(seconds: float, slice_seconds: float) -> int:
    """Whole slices in a span (at least one)."""
    return max(1, math.floor(seconds / slice_seconds + _SLICE_TOLERANCE))


# What :meth:`SliceFolder.screen` says of a row.
ADMITTED: Final = 0
FUTURE: Final = 1  # further ahead of the clock than max_future_seconds
LATE: Final = 2  # its slice was behind the watermark when it arrived


@dataclass
class ClosedSlice:
    slice_id: int
    sketch: WindowSketch


class SliceFolder:
    """Open slice sketches of one input (a partition, or a replay) keyed by slice id."""

    def __init__(
        self, slice_seconds: float, allowed_lateness: float, max_future: float | None = None
    ) -> None:
        if not slice_seconds > 0:
            raise ValueError(f"slice_seconds must be > 0, got {slice_seconds}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        if max_future is not None and not max_future > 0:
            raise ValueError(f"max_future must be > 0 or None, got {max_future}")
        self.slice_seconds = slice_seconds
        self.allowed_lateness = allowed_lateness
        self.max_future = max_future
        self.open: dict[int, WindowSketch] = {}
        self.max_ts = -np.inf
        self.next_slice = -(2**62)  # slices below this were handed out already
        self.late_events = 0
        self.future_events = 0
        self.duplicate_events = 0
        self.recent = RecentIds()

    @property
    def watermark(self) -> float:
        return float(self.max_ts - self.allowed_lateness)

    def slice_ids(self, ts: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor(ts / self.slice_seconds).astype(np.int64)

    def future_reference(self, ts: NDArray[np.float64], wall: float | None) -> float:
        """The time ``max_future`` counts from: the wall clock, or without one (replay) the later of the
        latest admitted event time and the batch's median event time."""
        if wall is not None:
            return wall
        return max(float(self.max_ts), float(np.median(ts))) if len(ts) else float(self.max_ts)

    def screen(self, ts: NDArray[np.float64], wall: float | None = None) -> NDArray[np.int8]:
        """:data:`ADMITTED`, :data:`FUTURE` or :data:`LATE` per row (in arrival order), counted; the admitted
        rows must then be folded (:meth:`assign`) before the next batch is screened."""
        verdict = np.zeros(len(ts), dtype=np.int8)
        if len(ts) == 0:
            return verdict
        future = np.zeros(len(ts), dtype=bool)
        if self.max_future is not None:
            future = ts > self.future_reference(ts, wall) + self.max_future
        admitted_ts = np.where(future, -np.inf, ts)
        # the watermark each row met: the latest admitted time before it, less the allowed lateness
        before = np.maximum.accumulate(np.concatenate(([self.max_ts], admitted_ts[:-1])))
        met = np.floor((before - self.allowed_lateness) / self.slice_seconds + _SLICE_TOLERANCE)
        late = (self.slice_ids(ts) < np.maximum(met, float(self.next_slice))) & ~future
        verdict[future] = FUTURE
        verdict[late] = LATE
        self.future_events += int(future.sum())
        self.late_events += int(late.sum())
        return verdict

    def fresh(self, event_ids: NDArray[np.uint64], ts: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which admitted rows carry an event id not already in an open slice (hashed ids); repeats counted."""
        keep = self.recent.fresh(event_ids, self.slice_ids(ts))
        self.duplicate_events += len(keep) - int(keep.sum())
        return keep

    def assign(self, ts: NDArray[np.float64]) -> tuple[NDArray[np.int64], int]:
        """Slice id per row and how many rows were late. Rows :meth:`screen` admitted are never late; rows
        not screened (forwarded labels) that are late are moved to the oldest open slice."""
        if len(ts) == 0:
            return np.empty(0, dtype=np.int64), 0
        ids = self.slice_ids(ts)
        late = ids < self.next_slice
        n_late = int(late.sum())
        if n_late:
            ids[late] = self.next_slice
            self.late_events += n_late
        self.max_ts = max(self.max_ts, float(ts.max()))
        return ids, n_late

    @staticmethod
    def segments(ids: NDArray[np.int64]) -> tuple[NDArray[np.intp] | None, NDArray[np.intp], list[int]]:
        """Group rows by slice: a permutation that sorts them (None if they already are), the start of each
        slice's run of rows in that order, and the slice ids in order."""
        order: NDArray[np.intp] | None = None
        if len(ids) > 1 and (np.diff(ids) < 0).any():
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
        if len(ids) == 0:
            return order, np.zeros(0, dtype=np.intp), []
        starts = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1)).astype(np.intp)
        return order, starts, ids[starts].tolist()

    def sketch(self, slice_id: int, factory: Callable[[], WindowSketch]) -> WindowSketch:
        sk = self.open.get(slice_id)
        if sk is None:
            sk = self.open[slice_id] = factory()
        return sk

    def snapshot(self) -> dict[str, Any]:
        """Plain data: open slices as sketch bytes (hex), the watermark state and counters."""
        return {
            "open": {str(k): v.to_bytes().hex() for k, v in self.open.items()},
            "max_ts": None if not np.isfinite(self.max_ts) else float(self.max_ts),
            "next_slice": self.next_slice,
            "late": self.late_events,
            "future": self.future_events,
            "duplicates": self.duplicate_events,
            "recent": self.recent.snapshot(),
        }

    def restore(self, state: dict[str, Any], layout: SketchLayout) -> None:
        self.open = {
            int(k): WindowSketch.from_bytes(bytes.fromhex(v), layout) for k, v in state["open"].items()
        }
        self.max_ts = -np.inf if state["max_ts"] is None else float(state["max_ts"])
        self.next_slice = int(state["next_slice"])
        self.late_events = int(state["late"])
        # snapshots before the event-time screen have none of these: no repeats remembered, counts from zero
        self.future_events = int(state.get("future", 0))
        self.duplicate_events = int(state.get("duplicates", 0))
        self.recent = RecentIds()
        self.recent.restore(state.get("recent", {}))

    def drain(self, final: bool = False) -> list[ClosedSlice]:
        """Slices the watermark has passed (all of them when ``final``), oldest first."""
        if final:
            ready = sorted(self.open)
        else:
            boundary = (
                slice_boundary(self.watermark, self.slice_seconds) if np.isfinite(self.watermark) else None
            )
            if boundary is None:
                return []
            ready = sorted(s for s in self.open if s < boundary)
            self.next_slice = max(self.next_slice, boundary)
        out = [ClosedSlice(s, self.open.pop(s)) for s in ready]
        if out:
            self.next_slice = max(self.next_slice, out[-1].slice_id + 1)
        self.recent.forget_before(self.next_slice)
        return out


@dataclass
class ClosedWindow:
    info: WindowInfo
    sketch: WindowSketch
    # (slice id, events) of each slice in the window, and the slice length: where in a cycle its events fell
    slices: tuple[tuple[int, int], ...] = ()
    slice_seconds: float = 0.0

    def spans(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """Start, length and events of each slice; one span over the whole window when slices are unknown
        (a window restored from a snapshot taken before they were recorded)."""
        if self.slices and self.slice_seconds > 0:
            ids = np.array([s for s, _ in self.slices], dtype=np.float64)
            events = np.array([n for _, n in self.slices], dtype=np.int64)
            return ids * self.slice_seconds, np.full(len(ids), self.slice_seconds), events
        span = max(self.info.end_ts - self.info.start_ts, 0.0)
        return np.array([self.info.start_ts]), np.array([span]), np.array([self.info.events], dtype=np.int64)


class WindowAssembler:
    """Merges closed slices, oldest first, into windows of at most ``max_events`` events / ``max_seconds``."""

    def __init__(self, slice_seconds: float, max_events: int, max_seconds: float) -> None:
        if max_events < 1 or max_seconds <= 0:
            raise ValueError("max_events must be >= 1 and max_seconds > 0")
        self.slice_seconds = slice_seconds
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.max_slices = slices_in(max_seconds, slice_seconds)
        self.current: WindowSketch | None = None
        self.slice_events: list[tuple[int, int]] = []  # of the current window, at most max_slices
        self._slices_known = True
        self.start_slice = 0
        self.end_slice = 0  # exclusive
        self.last_slice = -(2**62)

    def add(self, closed: ClosedSlice) -> list[ClosedWindow]:
        if closed.slice_id <= self.last_slice:
            raise ValueError(
                f"slice {closed.slice_id} arrived after slice {self.last_slice}: slices must be in order"
            )
        self.last_slice = closed.slice_id
        out: list[ClosedWindow] = []
        if self.current is not None and closed.slice_id + 1 - self.start_slice > self.max_slices:
            out.append(self._close())
        self.slice_events.append((closed.slice_id, closed.sketch.primary_events))
        if self.current is None:
            self.current = closed.sketch
            self.start_slice = closed.slice_id
        else:
            self.current.merge(closed.sketch)
        self.end_slice = closed.slice_id + 1
        if self.current.primary_events >= self.max_events:
            out.append(self._close())
        return out

    def advance(self, watermark: float) -> list[ClosedWindow]:
        """Close the current window once event time has moved past its longest allowed span."""
        if (
            self.current is not None
            and slice_boundary(watermark, self.slice_seconds) >= self.start_slice + self.max_slices
        ):
            return [self._close()]
        return []

    def flush(self) -> list[ClosedWindow]:
        return [self._close()] if self.current is not None else []

    def snapshot(self) -> dict[str, Any]:
        return {
            "current": None if self.current is None else self.current.to_bytes().hex(),
            "start": self.start_slice,
            "end": self.end_slice,
            "last": self.last_slice,
            "slices": self.slice_events,
        }

    def restore(self, state: dict[str, Any], layout: SketchLayout) -> None:
        cur = state["current"]
        self.current = None if cur is None else WindowSketch.from_bytes(bytes.fromhex(cur), layout)
        self.start_slice, self.end_slice, self.last_slice = (
            int(state["start"]),
            int(state["end"]),
            int(state["last"]),
        )
        # A snapshot from before slices were recorded: the open window's first slices are unknown, so it is
        # judged by its time span (ClosedWindow.spans), not by the slices seen since.
        self._slices_known = "slices" in state or self.current is None
        self.slice_events = [(int(s), int(n)) for s, n in state.get("slices", [])]

    def _close(self) -> ClosedWindow:
        assert self.current is not None
        sketch, self.current = self.current, None
        slices = tuple(self.slice_events) if self._slices_known else ()
        self.slice_events, self._slices_known = [], True
        info = WindowInfo(
            start_ts=self.start_slice * self.slice_seconds,
            end_ts=self.end_slice * self.slice_seconds,
            events=sketch.primary_events,
        )
        return ClosedWindow(info, sketch, slices, self.slice_seconds)
