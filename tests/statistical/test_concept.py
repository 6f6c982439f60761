"""Concept drift with late labels (marked slow; CI runs them).

* River's SEA concepts switched mid-stream, labels delayed by random amounts and some never arriving: the
  concept alert fires within a bound after the switch; the same stream without the switch raises none.
* The label-free estimate (CBPE) of a calibrated model tracks realised accuracy within 2 points.
* Labels slower than the freshness SLA raise a label_lag alert.
* State stays bounded with a million outstanding predictions.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from river.datasets import synth

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.core.rows import PredictionRows
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_spec import StreamSpec
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.performance_monitor import PerformanceMonitor
from stream_monitor.stats.profiles import ModelProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder

pytestmark = pytest.mark.slow

START = 1763766000.0 + 86400
RATE = 20.0
SEA_THRESHOLDS = {0: 8.0, 1: 9.0, 2: 7.0, 3: 9.5}


def _sea(n: int, seed: int, switch_at: int | None, start: float) -> dict[str, list[dict[str, Any]]]:
    """SEA concept 0 (the model's), switching to concept 3 after ``switch_at`` events if given; the model
    predicts concept 0's rule. Labels are delayed Exp(600 s); 10% never arrive."""
    rng = np.random.default_rng(seed)
    before = synth.SEA(variant=0, noise=0.05, seed=seed)
    after = synth.SEA(variant=3, noise=0.05, seed=seed + 1000)
    rows = (
        list(itertools.islice(before, n))
        if switch_at is None
        else [*itertools.islice(before, switch_at), *itertools.islice(after, n - switch_at)]
    )
    ts = start + np.cumsum(rng.exponential(1.0 / RATE, n))
    delays = rng.exponential(600.0, n)
    lost = rng.random(n) < 0.1
    out: dict[str, list[dict[str, Any]]] = {"features": [], "predictions": [], "labels": []}
    for i, (x, y) in enumerate(rows):
        eid = f"s-{seed}-{i}"
        out["features"].append(
            {
                "event_id": eid,
                "model_id": "sea",
                "ts": float(ts[i]),
                "features": {"f0": x[0], "f1": x[1], "f2": x[2]},
            }
        )
        out["predictions"].append(
            {
                "event_id": eid,
                "model_id": "sea",
                "ts": float(ts[i]) + 0.01,
                "prediction": int(x[0] + x[1] > SEA_THRESHOLDS[0]),
            }
        )  # SEA: y = x0 + x1 > theta
        if not lost[i]:
            out["labels"].append(
                {"event_id": eid, "model_id": "sea", "ts": float(ts[i] + delays[i]), "label": int(y)}
            )
    out["labels"].sort(key=lambda e: e["ts"])
    return out


def _profile(streams: dict[str, list[dict[str, Any]]], model: str) -> ModelProfile:
    b = ReferenceBuilder(seed=0)
    b.add_features(streams["features"])
    b.add_predictions(streams["predictions"])
    b.add_labels(streams["labels"])
    return b.build().models[model]


def _run(
    profile: ModelProfile,
    model: str,
    streams: dict[str, list[dict[str, Any]]],
    cfg: dict[str, Any] | None = None,
) -> list[Alert]:
    config = parse_config({"models": {model: {"reference": "unused", **(cfg or {})}}})
    engine = Engine(config, {model: profile}, ManualClock(0.0))
    merged = sorted(((e["ts"], k, e) for k, evs in streams.items() for e in evs), key=lambda t: t[0])
    alerts: list[Alert] = []
    for i in range(0, len(merged), 4000):
        block = merged[i : i + 4000]
        for stream in ("features", "predictions", "labels"):
            events = [e for _, k, e in block if k == stream]
            if events:
                alerts += engine.process_events(Stream(stream), events).alerts
    return alerts + engine.flush()


@pytest.fixture(scope="module")
def sea_profile() -> ModelProfile:
    return _profile(_sea(20_000, seed=1, switch_at=None, start=START - 86400), "sea")


def test_sea_concept_switch_is_caught_and_a_stable_stream_is_quiet(sea_profile: ModelProfile) -> None:
    n, switch = 120_000, 40_000  # 100 minutes at 20 events/s; the switch after about 33 minutes
    stable = _run(sea_profile, "sea", _sea(n, seed=2, switch_at=None, start=START))
    concept = [
        a for a in stable if a.kind.value in ("concept_drift", "label_lag") and a.status.value == "firing"
    ]
    assert concept == [], [(a.signal, a.detector, a.message) for a in concept]

    streams = _sea(n, seed=2, switch_at=switch, start=START)
    switch_ts = streams["features"][switch]["ts"]
    alerts = _run(sea_profile, "sea", streams)
    hits = [a for a in alerts if a.kind.value == "concept_drift" and a.status.value == "firing"]
    assert hits, [(a.kind.value, a.signal) for a in alerts]
    first = min(hits, key=lambda a: a.event_ts)
    assert first.event_ts >= switch_ts, "fired before the switch"
    # Performance windows are 15 minutes of prediction time: caught by the end of the first full one.
    assert first.event_ts - switch_ts <= 2 * 900.0
    assert first.signal == "performance" and 0 < first.details["label_coverage"] <= 1
    assert "labelled" in first.message


def test_cbpe_tracks_realised_accuracy_of_a_calibrated_model() -> None:
    spec = StreamSpec(
        n_numeric=5,
        n_categorical=2,
        seed=3,
        events_per_second=RATE,
        start_ts=START,
        label_delay_mean_s=300.0,
        label_drop_rate=0.0,
    )
    ref = generate(StreamSpec(n_numeric=5, n_categorical=2, seed=4, events_per_second=RATE), 20_000)
    profile = _profile(
        {"features": ref.features, "predictions": ref.predictions, "labels": ref.labels}, "churn-v3"
    )
    live = generate(spec, 90_000)
    config = parse_config({"models": {"churn-v3": {"reference": "unused"}}})
    engine = Engine(config, {"churn-v3": profile}, ManualClock(0.0))
    engine.process_events(Stream.PREDICTIONS, live.predictions)
    engine.process_events(Stream.LABELS, live.labels)
    perf = engine.pipelines["churn-v3"].performance
    assert perf is not None
    checked = 0
    for bucket in perf.buckets.values():
        if bucket.sketch.count < 5000:
            continue
        realised = bucket.sketch.metrics()["accuracy"]
        estimated = bucket.sketch.expected_performance()["expected_accuracy"]
        assert abs(realised - estimated) < 0.02, (realised, estimated)
        checked += 1
    assert checked >= 3


def test_labels_slower_than_the_sla_raise_label_lag() -> None:
    spec = StreamSpec(
        n_numeric=2,
        n_categorical=1,
        seed=5,
        events_per_second=RATE,
        start_ts=START,
        label_delay_mean_s=3600.0,
        label_drop_rate=0.1,
    )
    ref = generate(
        StreamSpec(n_numeric=2, n_categorical=1, seed=6, events_per_second=RATE, label_delay_mean_s=60),
        10_000,
    )
    profile = _profile(
        {"features": ref.features, "predictions": ref.predictions, "labels": ref.labels}, "churn-v3"
    )
    live = generate(spec, 60_000)
    cfg = {"labels": {"freshness_sla_seconds": 600.0, "min_coverage": 0.5}}
    alerts = _run(
        profile,
        "churn-v3",
        {"features": live.features, "predictions": live.predictions, "labels": live.labels},
        cfg,
    )
    lag = [a for a in alerts if a.kind.value == "label_lag" and a.status.value == "firing"]
    assert lag, [(a.kind.value, a.signal) for a in alerts]
    assert lag[0].details["label_coverage"] < 0.5 and lag[0].details["sla_seconds"] == 600.0


def test_state_stays_bounded_with_a_million_outstanding_predictions() -> None:
    ref = generate(StreamSpec(n_numeric=1, n_categorical=0, seed=8), 5_000)
    profile = _profile(
        {"features": ref.features, "predictions": ref.predictions, "labels": ref.labels}, "churn-v3"
    )
    config = parse_config(
        {"models": {"churn-v3": {"reference": "unused", "labels": {"max_outstanding": 1_000_000}}}}
    )
    monitor = PerformanceMonitor(
        ModelLayout.build("churn-v3", config.models["churn-v3"], profile), 1e-3, 1e-4
    )
    rng = np.random.default_rng(0)
    n, batch = 1_200_000, 100_000
    for start in range(0, n, batch):
        ids = [f"p-{i}" for i in range(start, start + batch)]
        ts = START + np.arange(start, start + batch) * 0.01
        monitor.add_predictions(
            PredictionRows(ts, ids, rng.integers(0, 2, batch).astype(float), rng.random(batch), [])
        )
    stats = monitor.joiner.stats()
    # Capacity evictions free a little headroom at once, so the table sits just under its cap.
    assert 950_000 <= stats.outstanding <= 1_000_000
    assert stats.evicted_capacity == n - stats.outstanding
    assert stats.state_bytes / stats.outstanding < 300
    assert len(monitor.buckets) <= n * 0.01 / 900 + 2


def test_the_same_switch_is_found_by_replay_from_files(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from stream_monitor.cli import main
    from stream_monitor.core.alerts import decode_alert
    from stream_monitor.devtools.synthetic_jsonl import encode

    def write(streams: dict[str, list[dict[str, Any]]], folder: Any) -> None:
        folder.mkdir()
        for name, events in streams.items():
            (folder / f"{name}.jsonl").write_bytes(b"".join(encode(e) + b"\n" for e in events))

    write(_sea(20_000, seed=1, switch_at=None, start=START - 86400), tmp_path / "ref")
    write(_sea(80_000, seed=2, switch_at=30_000, start=START), tmp_path / "live")
    runner = CliRunner()
    ref, live = tmp_path / "ref", tmp_path / "live"
    assert (
        runner.invoke(
            main,
            [
                "reference",
                "build",
                "--features",
                str(ref / "features.jsonl"),
                "--predictions",
                str(ref / "predictions.jsonl"),
                "--labels",
                str(ref / "labels.jsonl"),
                "--out",
                str(tmp_path / "reference.json"),
            ],
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            main,
            [
                "config",
                "init",
                "--reference",
                str(tmp_path / "reference.json"),
                "--out",
                str(tmp_path / "config.yaml"),
            ],
        ).exit_code
        == 0
    )
    result = runner.invoke(
        main,
        [
            "replay",
            "--config",
            str(tmp_path / "config.yaml"),
            "--features",
            str(live / "features.jsonl"),
            "--predictions",
            str(live / "predictions.jsonl"),
            "--labels",
            str(live / "labels.jsonl"),
            "--alerts-out",
            str(tmp_path / "alerts.jsonl"),
            "--retraining-out",
            str(tmp_path / "retrain.jsonl"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    alerts = [decode_alert(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a.kind.value == "concept_drift" and a.signal == "performance" for a in alerts)
    requests = (tmp_path / "retrain.jsonl").read_bytes().splitlines()
    assert requests and b'"schema":"stream-monitor.retraining-request/v1"' in requests[0]


def _segment_streams(flip_share: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    """A calibrated model whose labels, for events with cat_00 == "b" only, are flipped with ``flip_share``."""
    spec = StreamSpec(
        n_numeric=3,
        n_categorical=2,
        seed=seed,
        events_per_second=RATE,
        start_ts=START,
        label_delay_mean_s=120.0,
        label_drop_rate=0.05,
    )
    live = generate(spec, 80_000)
    segment_of = {e["event_id"]: e["features"]["cat_00"] for e in live.features}
    rng = np.random.default_rng(seed)
    labels = []
    for e in live.labels:
        if segment_of[e["event_id"]] == "b" and rng.random() < flip_share:
            e = {**e, "label": 1 - e["label"]}
        labels.append(e)
    return {"features": live.features, "predictions": live.predictions, "labels": labels}


def test_a_segment_that_goes_wrong_is_named_and_a_healthy_split_is_quiet() -> None:
    ref = generate(
        StreamSpec(n_numeric=3, n_categorical=2, seed=12, events_per_second=RATE, label_delay_mean_s=60),
        30_000,
    )
    profile = _profile(
        {"features": ref.features, "predictions": ref.predictions, "labels": ref.labels}, "churn-v3"
    )
    assert profile.labels is not None and "cat_00" in profile.labels.segments
    cfg = {"segments": ["cat_00"]}
    quiet = _run(profile, "churn-v3", _segment_streams(0.0, seed=13), cfg)
    assert not [a for a in quiet if a.signal.startswith("segment:")], [a.message for a in quiet]
    alerts = _run(profile, "churn-v3", _segment_streams(0.3, seed=13), cfg)
    segment = [a for a in alerts if a.signal.startswith("segment:") and a.status.value == "firing"]
    assert segment, [(a.kind.value, a.signal) for a in alerts]
    assert {a.signal for a in segment} == {"segment:cat_00=b"}
    assert segment[0].details["error_rate"] > segment[0].details["others_error_rate"] + 0.03
