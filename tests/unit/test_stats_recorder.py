"""EngineRecorder: a real engine over the example stream, recorded batch by batch, agrees with the engine."""

from __future__ import annotations

import bisect

import numpy as np
import pytest

from stream_monitor.app.compose import build_engine
from stream_monitor.config.loading import load_config
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.counters import LATENCY_BUCKETS, Histogram, ServiceStats
from stream_monitor.pipeline.recorder import (
    REJECTED,
    UNATTRIBUTED,
    EngineRecorder,
    event_times,
    latency_counts,
    observe_latency,
    window_fill,
)
from tests.engine_feed import COMPOSE_CONFIG, EXAMPLE_STREAM, STREAM_START, feed, merged_batches

MODEL = "churn-v3"


def test_recorded_stats_agree_with_the_engine() -> None:
    engine = build_engine(load_config(COMPOSE_CONFIG))
    stats = ServiceStats()
    recorder = EngineRecorder(stats, engine)
    results = feed(engine, recorder, merged_batches(EXAMPLE_STREAM, batch=400))
    snap = stats.snapshot()
    pipeline = engine.pipelines[MODEL]

    for stream, accepted in pipeline.accepted.items():
        assert snap.events[(MODEL, stream, "accepted")] == accepted
    assert snap.events[(MODEL, "features", "accepted")] == 7200
    alerts = [a for r in results for a in r.alerts]
    assert alerts, "the example stream drifts"
    assert sum(snap.alerts.values()) == len(alerts)
    for a in alerts:
        assert snap.alerts[(a.model_id, a.kind.value, a.severity.value, a.status.value)] >= 1
    assert snap.windows_tested[MODEL] == pipeline.monitor.windows_tested > 0
    assert 0.0 <= snap.window_fill[MODEL] <= 1.0
    assert snap.window_fill[MODEL] == window_fill(pipeline)
    # num_00 shifts by 0.75 sd from +600 s and is still shifted at the end: critical, firing.
    assert snap.drift_status[(MODEL, "covariate_drift", "num_00")] == 2
    assert snap.drift_status[(MODEL, "covariate_drift", "num_02")] == 0
    firing = pipeline.monitor.lifecycle.firing
    for (model, kind, signal), status in snap.drift_status.items():
        assert model == MODEL
        assert status == {None: 0, "warning": 1, "critical": 2}[firing.get((kind, signal))]
    for o in pipeline.monitor.last_observations:
        key = (MODEL, o.kind.value, o.signal, o.detector)
        assert snap.drift_statistic[key] == o.statistic
        assert snap.drift_threshold[key] == o.warning_threshold
    assert snap.batch_seconds["engine"].n == len(results)
    assert snap.overflow == 0


def test_status_is_ok_before_the_drift_and_critical_after() -> None:
    engine = build_engine(load_config(COMPOSE_CONFIG))
    stats = ServiceStats()
    recorder = EngineRecorder(stats, engine)
    batches = merged_batches(EXAMPLE_STREAM, batch=400)
    feed(engine, recorder, batches, until_ts=STREAM_START + 650)  # two clean windows tested
    key = (MODEL, "covariate_drift", "num_00")
    assert stats.snapshot().windows_tested[MODEL] >= 2
    assert stats.snapshot().drift_status[key] == 0
    feed(engine, recorder, batches)
    assert stats.snapshot().drift_status[key] == 2


def test_rejected_messages_are_counted_as_events_and_dead_letters() -> None:
    engine = build_engine(load_config(COMPOSE_CONFIG))
    stats = ServiceStats()
    recorder = EngineRecorder(stats, engine)
    good = b'{"event_id":"e1","model_id":"churn-v3","ts":1763766000.0,"features":{"num_00":28.0}}'
    messages = [
        good,
        b"not json",
        b'{"event_id":"e2","model_id":"nope","ts":1763766000.0,"features":{}}',
        None,
    ]
    result = engine.process(Stream.FEATURES, messages)
    recorder.record(Stream.FEATURES, result)
    snap = stats.snapshot()
    assert snap.events[(MODEL, "features", "accepted")] == 1
    assert snap.events[(UNATTRIBUTED, "features", REJECTED)] == 3
    assert snap.dead_letters == {"not_json": 1, "unknown_model": 1, "empty_message": 1}
    recorder.record(Stream.FEATURES, engine.process(Stream.FEATURES, []))
    assert stats.snapshot().events[(MODEL, "features", "accepted")] == 1, "deltas, not totals, are added"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_latency_counts_match_prometheus_le_semantics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.exponential(5.0, 500), np.asarray(LATENCY_BUCKETS), [0.0, -1.0, 1e9, np.nan]]
    )
    counts, total = latency_counts(values)
    reference = Histogram(LATENCY_BUCKETS)
    kept = [max(0.0, v) for v in values.tolist() if not np.isnan(v)]
    reference.observe_many(kept)
    assert counts == reference.counts  # a value equal to a bound lands in that bound's bucket (le)
    assert total == pytest.approx(reference.total)


def test_observe_latency_from_decoded_events() -> None:
    stats = ServiceStats()
    now = 1763766100.0
    events = [
        {"ts": now - 100.0},
        {"ts": int((now - 0.5) * 1000)},
        {"ts": "2025-11-21T23:01:39Z"},
        {"nots": 1},
    ]
    ts = event_times(events)  # seconds, milliseconds and ISO-8601 read alike; NaN where missing
    assert np.isnan(ts[3])
    observe_latency(stats, "features", ts, now=now)
    h = stats.snapshot().latency["features"]
    assert h.n == 3
    assert h.total == pytest.approx(100.0 + 0.5 + 1.0)
    for latency in (100.0, 0.5, 1.0):
        assert h.counts[bisect.bisect_left(LATENCY_BUCKETS, latency)] == 1
    observe_latency(stats, "features", np.array([]), now=now)
    assert stats.snapshot().latency["features"].n == 3
