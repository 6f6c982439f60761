"""Slices and windows: count- or time-closed, deterministic, late events kept and counted."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.pipeline.windows import ClosedSlice, SliceFolder, WindowAssembler
from stream_monitor.stats.profiles import NumericProfile
from stream_monitor.stats.sketch_layout import NumericSignal, SketchLayout
from stream_monitor.stats.sketches import WindowSketch

PROF = NumericProfile(
    count=10, nulls=0, edges=np.array([0.0]), counts=np.array([5, 5]), mean=0, std=1, min=-1, max=1
)
LAYOUT = SketchLayout([NumericSignal("x", "feature", PROF)], [])


def _slice(slice_id: int, events: int, ts: float) -> ClosedSlice:
    sk = WindowSketch(LAYOUT)
    sk.count_events("features", np.full(events, ts))
    return ClosedSlice(slice_id, sk)


def test_drain_hands_out_slices_the_watermark_passed_in_order() -> None:
    folder = SliceFolder(slice_seconds=10.0, allowed_lateness=5.0)
    ids, late = folder.assign(np.array([1.0, 12.0, 25.0, 3.0]))
    assert ids.tolist() == [0, 1, 2, 0] and late == 0
    for s in set(ids.tolist()):
        folder.sketch(s, lambda: WindowSketch(LAYOUT))
    assert [c.slice_id for c in folder.drain()] == [0, 1]  # watermark 20: slices ending <= 20
    ids, late = folder.assign(np.array([4.0, 26.0]))  # slice 0 is gone: 4.0 is late
    assert ids.tolist() == [2, 2] and late == 1 and folder.late_events == 1
    assert [c.slice_id for c in folder.drain(final=True)] == [2]


def test_windows_close_on_count_or_on_time() -> None:
    asm = WindowAssembler(slice_seconds=1.0, max_events=100, max_seconds=10.0)
    assert asm.add(_slice(0, 60, 0.5)) == []
    closed = asm.add(_slice(1, 50, 1.5))
    assert len(closed) == 1 and closed[0].info.events == 110
    assert (closed[0].info.start_ts, closed[0].info.end_ts) == (0.0, 2.0)
    assert asm.add(_slice(5, 10, 5.5)) == []
    closed = asm.add(_slice(15, 10, 15.5))  # slice 15 would stretch the window past 10 s
    assert [w.info.events for w in closed] == [10]
    assert asm.advance(24.9) == [] and [w.info.events for w in asm.advance(25.0)] == [10]


def test_slices_must_arrive_in_order() -> None:
    asm = WindowAssembler(slice_seconds=1.0, max_events=100, max_seconds=10.0)
    asm.add(_slice(3, 1, 3.0))
    with pytest.raises(ValueError, match="in order"):
        asm.add(_slice(2, 1, 2.0))


def test_snapshot_restore_continues_identically() -> None:
    folder = SliceFolder(slice_seconds=2.0, allowed_lateness=0.0)
    ids, _ = folder.assign(np.array([1.0, 3.0, 5.0]))
    for s in ids.tolist():
        folder.sketch(s, lambda: WindowSketch(LAYOUT)).count_events("features", np.array([2.0 * s]))
    folder.drain()
    copy = SliceFolder(slice_seconds=2.0, allowed_lateness=0.0)
    copy.restore(folder.snapshot(), LAYOUT)
    assert [(c.slice_id, c.sketch) for c in folder.drain(final=True)] == [
        (c.slice_id, c.sketch) for c in copy.drain(final=True)
    ]
    asm = WindowAssembler(1.0, 100, 10.0)
    asm.add(_slice(0, 5, 0.1))
    twin = WindowAssembler(1.0, 100, 10.0)
    twin.restore(asm.snapshot(), LAYOUT)
    assert [w.info for w in asm.flush()] == [w.info for w in twin.flush()]
