"""Concept drift at label speed: the error-rate CUSUM bank, the River wrappers behind the same interface, the
canonical feeding order, and the performance windows that close on an expected labelled count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream_monitor.core.errors import SnapshotError
from stream_monitor.detectors.error_cusum import ErrorRateCusum, design_cusum, in_control_run_length
from stream_monitor.pipeline.error_stream import ErrorStreamMonitor
from stream_monitor.pipeline.joined_pairs import PendingPairs
from stream_monitor.pipeline.performance_windows import CountOrTimeWindows

DETECTORS = ["cusum", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm", "adwin", "page_hinkley"]


def _bits(rng: np.random.Generator, *segments: tuple[int, float]) -> np.ndarray:
    return np.concatenate([rng.random(n) < p for n, p in segments]).astype(np.float64)


def _monitor(name: str, p0: float = 0.1) -> ErrorStreamMonitor:
    return ErrorStreamMonitor(name, p0, 20_000, alpha_warning=1e-7, alpha_critical=1e-8)


def _feed(monitor: ErrorStreamMonitor, bits: np.ndarray, batch: int = 1000) -> list[tuple[float, str]]:
    """Bits arriving one per second of event time; returns (label arrival, level) of every signal."""
    ts = np.arange(len(bits), dtype=np.float64)
    out = []
    for i in range(0, len(bits), batch):
        for o in monitor.observe(ts[i : i + batch], ts[i : i + batch], bits[i : i + batch]):
            assert o.observation.level is not None
            out.append((o.event_ts, o.observation.level.value))
    return out


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_fires_on_a_rising_error_rate(name: str) -> None:
    bits = _bits(np.random.default_rng(3), (5000, 0.1), (2000, 0.5))
    fired = [ts for ts, _ in _feed(_monitor(name), bits)]
    # (EDDM also signals on stable streams: see its docstring; the others do not here)
    assert any(5000 <= ts < 5400 for ts in fired), f"{name} missed a rise from 10% to 50% errors: {fired}"
    if name != "eddm":
        assert fired[0] >= 5000


@pytest.mark.parametrize("name", DETECTORS)
def test_no_detector_fires_on_a_falling_error_rate(name: str) -> None:
    bits = _bits(np.random.default_rng(4), (5000, 0.1), (20_000, 0.01))
    fired = [ts for ts, _ in _feed(_monitor(name), bits)]
    assert fired == [] or fired[0] < 5000, f"{name} paged on an improvement at {fired}"
    assert not [ts for ts in fired if ts >= 5000]


@pytest.mark.parametrize("name", DETECTORS)
def test_no_detector_takes_nan(name: str) -> None:
    monitor = _monitor(name)
    with pytest.raises(ValueError, match="0 or 1"):
        monitor.observe(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([0.0, math.nan]))


def test_the_cusum_run_length_is_exact() -> None:
    # A fair walk with steps +1/-1, reflected at 0 and absorbed at 3: 12 steps on average (by hand).
    assert in_control_run_length(1, 1, 3, 0.5) == pytest.approx(12.0)
    up, down, h, _ = design_cusum(0.2, 3.0, 500.0)
    assert in_control_run_length(up, down, h, 0.2) >= 500.0 > in_control_run_length(up, down, h - 1, 0.2)
    # ... and a simulation of that design's first false alarms agrees with it
    rng = np.random.default_rng(11)
    firsts = []
    for _ in range(400):
        bank = ErrorRateCusum(0.2, 500.0, 5000.0, odds_ratios=(3.0,))
        events = bank.update_many(rng.random(8000) < 0.2)
        firsts.append(events[0].index + 1 if events else 8000)
    assert np.mean(firsts) == pytest.approx(in_control_run_length(up, down, h, 0.2), rel=0.12)


def test_the_cusum_warns_then_alarms_keeps_alarming_while_errors_stay_up_and_is_ready_for_the_next() -> None:
    rng = np.random.default_rng(5)
    bits = _bits(rng, (3000, 0.1), (300, 0.6), (3000, 0.1), (300, 0.6), (3000, 0.1))
    events = ErrorRateCusum(0.1, 1e6, 1e7).update_many(bits)
    spans = [(3000, 3300), (6300, 6600)]
    assert all(any(a <= e.index < b for a, b in spans) for e in events), "signals only while errors are up"
    for a, b in spans:
        inside = [e for e in events if a <= e.index < b]
        assert [e.level for e in inside[:2]] == ["warning", "critical"]
        assert inside[0].index < a + 40 and len(inside) >= 3
        first = inside[0]
        # the run it judged starts near the change, and its error rate is the new one
        assert a - 50 <= first.index - first.labelled + 1 <= a + 50
        assert first.errors / first.labelled > 0.4


def test_cusum_batching_and_snapshots_do_not_change_what_it_signals() -> None:
    bits = _bits(np.random.default_rng(6), (4000, 0.1), (500, 0.4), (4000, 0.1), (500, 0.4))
    whole = [(e.index, e.level) for e in ErrorRateCusum(0.1, 1e6, 1e7).update_many(bits)]
    bank = ErrorRateCusum(0.1, 1e6, 1e7)
    pieces = []
    for i in range(0, len(bits), 777):
        restored = ErrorRateCusum(0.1, 1e6, 1e7)
        restored.restore(bank.snapshot())
        bank = restored
        pieces += [(e.index + i, e.level) for e in bank.update_many(bits[i : i + 777])]
    assert pieces == whole and whole


def test_a_cusum_snapshot_of_other_parameters_is_refused() -> None:
    with pytest.raises(SnapshotError):
        ErrorRateCusum(0.2, 1e6, 1e7).restore(ErrorRateCusum(0.1, 1e6, 1e7).snapshot())


def test_pairs_are_released_in_arrival_order_whatever_the_batching() -> None:
    rng = np.random.default_rng(8)
    n = 6000
    bits = _bits(rng, (4000, 0.1), (2000, 0.5))
    arrival = np.arange(n) + rng.exponential(30.0, n)  # labels late by random amounts
    pred_ts = np.arange(n, dtype=np.float64)
    nan = np.full(n, math.nan)

    def run(batch: int, shuffle: bool, watermarks: int) -> list[tuple[float, str]]:
        held, monitor = PendingPairs(), _monitor("cusum")
        order = rng.permutation(n) if shuffle else np.argsort(arrival)
        for i in range(0, n, batch):
            sel = order[i : i + batch]
            held.add(arrival[sel], pred_ts[sel], bits[sel], nan[sel], np.zeros(len(sel)))
        out = []
        for watermark in [*np.linspace(0, n, watermarks), math.inf]:
            pairs = held.release(watermark)
            for o in monitor.observe(pairs.arrival, pairs.pred_ts, pairs.predicted):
                out.append((o.event_ts, str(o.observation.level)))
        restored = PendingPairs()
        restored.restore(held.snapshot())
        assert len(restored) == len(held) == 0
        return out

    assert run(500, shuffle=False, watermarks=3) == run(37, shuffle=True, watermarks=50) != []


def test_an_alarm_says_the_error_rate_before_and_after() -> None:
    bits = _bits(np.random.default_rng(9), (8000, 0.1), (400, 0.5))
    ts = np.arange(len(bits), dtype=np.float64)
    monitor = _monitor("cusum", p0=0.1)
    first = monitor.observe(ts, ts, bits)[0]
    details = first.observation.details
    assert 0.08 < details["error_rate_before"] < 0.12 and details["error_rate"] > 0.35
    assert details["reference_error_rate"] == 0.1 and details["labelled"] == first.window.events > 0
    assert first.event_ts >= first.window.end_ts >= 8000


def test_windows_close_on_count_or_time_and_take_late_labels() -> None:
    windows: CountOrTimeWindows[list[float]] = CountOrTimeWindows(
        list, slice_seconds=1.0, target=100, max_seconds=30.0, max_pending=4
    )
    for ts in np.arange(0.0, 10.0, 0.05):  # 20 a second: 100 by t=5
        windows.slot(windows.slice_of(float(ts))).append(float(ts))
    closed = windows.close(watermark=9.0, counts=len)
    assert [(w.start_ts, w.end_ts, len(w.bucket)) for w in closed] == [(0.0, 5.0, 100)]
    windows.slot(windows.slice_of(2.5)).append(2.5)  # a late label revises the closed window
    assert len(windows.closed[0].bucket) == 101
    windows.slot(windows.slice_of(50.0)).append(50.0)  # a quiet stretch, then one prediction
    closed = windows.close(watermark=100.0, counts=len)
    # [5, 10) filled 100; then the lone prediction's window runs out of time 30 s after it opened
    assert [(w.start_ts, w.end_ts, len(w.bucket)) for w in closed] == [(5.0, 10.0, 100), (50.0, 80.0, 1)]
    windows.pop(windows.closed[0])
    assert windows.slot(windows.slice_of(1.0)) == []  # judged and dropped: a throwaway bucket
    assert len(windows.overflow()) == 0
