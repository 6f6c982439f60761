"""Performance windows in the engine: they close at an expected labelled count (or on time), a short backtest
still gets its verdict when replay flushes, and judged windows are forgotten."""

from __future__ import annotations

from typing import Any

from stream_monitor.config.loading import parse_config
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.performance_monitor import PerformanceMonitor, expected_label_share
from tests import service_support as ss


def _engine(**performance: Any) -> Engine:
    model = ss.concept_model_config()
    model["performance"] = {**model["performance"], **performance}
    cfg = parse_config({"models": {ss.MODEL: model}})
    return Engine(cfg, ss.concept_profile().models, ManualClock(0.0))


def _judged_windows(engine: Engine, streams: dict[str, list[dict[str, Any]]], flush: bool) -> list[Any]:
    perf = engine.pipelines[ss.MODEL].performance
    assert isinstance(perf, PerformanceMonitor)
    seen = []
    original = perf.judge.judge

    def spy(b: Any, coverage: float) -> Any:
        seen.append((b.sketch.prediction_count, b.sketch.count))
        return original(b, coverage)

    perf.judge.judge = spy  # type: ignore[method-assign]
    merged = sorted(((e["ts"], k, e) for k, evs in streams.items() for e in evs), key=lambda t: t[0])
    for i in range(0, len(merged), 500):
        for stream in ss.CONCEPT_STREAMS:
            events = [e for _, k, e in merged[i : i + 500] if k == stream]
            if events:
                engine.process_events(Stream(stream), events)
    if flush:
        engine.flush()
    return seen


def test_windows_close_at_the_expected_labelled_count() -> None:
    engine = _engine(window_labelled=500, bucket_seconds=900.0)
    share = expected_label_share(engine.pipelines[ss.MODEL].layout)
    assert 0.85 < share < 0.95  # the reference lost a tenth of its labels
    target = 500 / share
    windows = _judged_windows(engine, ss.concept_streams(8_000, switch=False), flush=False)
    assert len(windows) >= 10
    # each closes at the first slice boundary past the target (a slice holds about 56 predictions here)
    assert all(target <= predictions <= target + 100 for predictions, _ in windows), windows
    # and is judged once labels.min_coverage (half) of its labels are in
    assert all(0.5 * p <= labelled <= p for p, labelled in windows), windows


def test_a_backtest_shorter_than_a_window_is_judged_when_replay_flushes() -> None:
    streams = ss.concept_streams(1_500, switch=False)  # 7.5 s of predictions, far below the 2,000 labelled
    assert _judged_windows(_engine(bucket_seconds=900.0), streams, flush=False) == []
    windows = _judged_windows(_engine(bucket_seconds=900.0), streams, flush=True)
    assert len(windows) == 1 and windows[0][1] >= 1_200


def test_judged_windows_are_forgotten() -> None:
    engine = _engine(window_labelled=500, bucket_seconds=900.0)
    _judged_windows(engine, ss.concept_streams(8_000, switch=False), flush=False)
    perf = engine.pipelines[ss.MODEL].performance
    assert perf is not None
    assert len(perf.windows.closed) <= 2  # the ones still waiting for their labels
