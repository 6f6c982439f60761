"""The soak run's figures (``tests/soak_figures.py``) and its stream (``tests/soak_run.py``), without a broker."""

from __future__ import annotations

import math

from stream_monitor.core.alerts import Alert, AlertKind, Severity, Status, WindowInfo
from tests import service_support as ss
from tests.soak_figures import Sample, alert_latencies, judge, memory_drift, percentile
from tests.soak_run import SoakPlan, segments


def _alert(end_ts: float, status: Status = Status.FIRING) -> Alert:
    return Alert.build(
        model_id="m", kind=AlertKind.COVARIATE_DRIFT, signal="num_00", severity=Severity.WARNING,
        status=status, detector="psi", statistic=0.3, threshold=0.2, window=WindowInfo(end_ts - 5, end_ts, 1000),
        episode_start_ts=end_ts, detected_at=0.0, message="",
    )  # fmt: skip


def test_percentile_is_a_measured_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))


def test_memory_drift_compares_the_warm_start_with_the_end() -> None:
    flat = [Sample(float(t), 100, 9) for t in range(0, 100, 10)]
    assert memory_drift(flat, warm_from=20.0) == 0.0
    growing = [Sample(float(t), 100 + t, 9) for t in range(0, 100, 10)]
    # warm start: mean of 120, 130, 140; end: mean of 170, 180, 190
    assert math.isclose(memory_drift(growing, warm_from=20.0), (180 - 130) / 130)
    assert math.isnan(memory_drift(growing, warm_from=80.0))  # too few samples after warm-up


def test_latency_runs_from_the_event_that_lets_the_window_close() -> None:
    stamps_ts, stamps_wall = [10.0, 11.0, 12.0, 13.0], [100.0, 100.1, 100.2, 100.3]
    seen = [(_alert(10.0), 100.5), (_alert(11.5, Status.RESOLVED), 101.0), (_alert(20.0), 102.0)]
    # windows end at 10.0 and 11.5; with 1 s lateness the closing events are those of ts 11.0 and 13.0;
    # the third window's closing event was never produced (a sentinel closed it): no latency
    assert [round(x, 3) for x in alert_latencies(seen, stamps_ts, stamps_wall, 1.0)] == [0.4, 0.7]
    firing = alert_latencies(seen, stamps_ts, stamps_wall, 1.0, Status.FIRING)
    assert [round(x, 3) for x in firing] == [0.4]


def _figures(**changes: object) -> dict[str, object]:
    good: dict[str, object] = {
        "memory_drift_max": 0.01,
        "latency_p99_s": 0.5,
        "threads_after_warmup": [17, 17],
        "state_keys": 4,
        "state_keys_bound": 12,
        "lost_events": 0,
        "extra_events": 0,
        "windows_missing": 0,
    }
    return {**good, **changes}


def test_judge_names_each_bound_the_figures_miss() -> None:
    assert judge(_figures()) == []
    assert judge(_figures(memory_drift_max=0.2))[0].startswith("memory drift after warm-up 0.2")
    assert judge(_figures(memory_drift_max=None)) == ["memory drift after warm-up None not under 0.1"]
    assert "latency" in judge(_figures(latency_p99_s=5.0))[0]
    assert "thread count" in judge(_figures(threads_after_warmup=[17, 18]))[0]
    assert "state keys" in judge(_figures(state_keys=13))[0]
    assert judge(_figures(lost_events=3)) == ["events lost or counted twice"]


def test_the_kill_falls_mid_segment_with_no_episode_open() -> None:
    for minutes in (1.5, 3, 30):
        plan = SoakPlan(seconds=minutes * 60, segment_seconds=15.0 if minutes < 10 else 30.0)
        k = int(plan.kill_at_s() // plan.segment_seconds)
        assert not plan.drifting(k) and not plan.drifting(k - 1)
        assert plan.kill_at_s() >= plan.seconds / 2


def test_segments_are_one_stream_in_event_time_order_with_unique_ids() -> None:
    plan = SoakPlan(seconds=8.0, rate=100.0, segment_seconds=2.0)
    parts = list(segments(plan))
    assert [len(p) for p in parts] == [200] * 4
    stream = [e for p in parts for e in p]
    ts = [e["ts"] for e in stream]
    assert ts == sorted(ts) and ts[0] >= ss.LIVE_START
    assert len({e["event_id"] for e in stream}) == len(stream)
    assert [e["event_id"] for e in stream] == [e["event_id"] for p in segments(plan) for e in p]  # repeatable
