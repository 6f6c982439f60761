"""Replays of seeded streams: one change of one feature raises one alert, with the kind that names it.

The config makes the range test strict (``range_warning`` 0.2 %) and the PSI floor low, so that a variance
x1.6 moves both the histogram and the share of values beyond the reference's range: each test shows that
both detectors reached a level in one window (the window statistics record every test) and that one alert
came out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.core.window_stats import WindowStat
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_spec import Drift, StreamSpec
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.profiles import ModelProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder

MODEL = "churn-v3"
RATE = 50.0
START = 1763766000.0 + 86400.0
CHANGE = START + 200.0
EVENTS = 40_000  # 800 s: 8 windows of 5,000 events, 6 after the change
STRICT = {
    "default_test": {"statistic": "psi", "warning": 0.05},
    "data_quality": {"range_warning": 0.002},
}


@pytest.fixture(scope="module")
def profile() -> ModelProfile:
    ref = generate(StreamSpec(n_numeric=3, n_categorical=1, seed=101, events_per_second=RATE), 5_000)
    builder = ReferenceBuilder(seed=0)
    builder.add_features(ref.features)
    builder.add_predictions(ref.predictions)
    return builder.build().models[MODEL]


def _replay(
    profile: ModelProfile,
    drifts: Sequence[Drift],
    model_cfg: dict[str, Any],
    sentinel: tuple[str, float, float] | None = None,
) -> tuple[list[Alert], list[WindowStat]]:
    """Alerts and window statistics of a replay; ``sentinel`` = (feature, value, share): after the change,
    every ``1 / share``-th event sends that value for the feature instead of its own."""
    spec = StreamSpec(
        n_numeric=3, n_categorical=1, seed=11, events_per_second=RATE, start_ts=START, with_labels=False
    )
    stream = generate(spec, EVENTS, drifts)
    features = stream.features
    if sentinel is not None:
        name, value, share = sentinel
        every = round(1 / share)
        features = [
            {**e, "features": {**e["features"], name: value}} if e["ts"] >= CHANGE and k % every == 0 else e
            for k, e in enumerate(features)
        ]
    config = parse_config({"models": {MODEL: {"reference": "unused", **model_cfg}}})
    engine = Engine(config, {MODEL: profile}, ManualClock(0.0))
    engine.record_stats(True)
    alerts: list[Alert] = []
    for i in range(0, EVENTS, 2000):
        alerts += engine.process_events(Stream.FEATURES, features[i : i + 2000]).alerts
        alerts += engine.process_events(Stream.PREDICTIONS, stream.predictions[i : i + 2000]).alerts
    alerts += engine.flush()
    return alerts, engine.take_stats()


def _flagged_together(stats: list[WindowStat], signal: str, detectors: set[str]) -> bool:
    """Whether, in some window, every one of ``detectors`` reached a level on ``signal``."""
    by_window: dict[float, set[str]] = {}
    for s in stats:
        if s.signal == signal and s.decision != "ok":
            by_window.setdefault(s.window.end_ts, set()).add(s.detector)
    return any(detectors <= flagged for flagged in by_window.values())


def test_a_variance_grown_1_6x_raises_exactly_one_alert_for_its_feature(profile: ModelProfile) -> None:
    drift = Drift("variance_scale", "num_02", start_ts=CHANGE, magnitude=1.6)
    alerts, stats = _replay(profile, [drift], STRICT)
    assert _flagged_together(stats, "num_02", {"psi", "out_of_range"}), "both detectors saw it"
    mine = [a for a in alerts if a.signal == "num_02"]
    assert [(a.kind.value, a.status.value) for a in mine] == [("covariate_drift", "firing")]
    alert = mine[0]
    assert alert.event_ts > CHANGE and alert.detector == "psi"
    ratio = re.search(r"variance x(\d+\.\d+)", alert.message)
    assert ratio and 1.4 <= float(ratio.group(1)) <= 1.8, alert.message
    assert alert.details["std_ratio"] ** 2 == pytest.approx(float(ratio.group(1)), rel=0.05)
    assert not [a for a in alerts if a.kind.value == "data_quality"]


def test_the_first_window_that_both_detectors_flag_gives_one_alert_carrying_both(
    profile: ModelProfile,
) -> None:
    drift = Drift("variance_scale", "num_02", start_ts=CHANGE, magnitude=3.0)
    alerts, stats = _replay(profile, [drift], {"data_quality": {"range_warning": 0.002}})
    firing = [a for a in alerts if a.signal == "num_02" and a.status.value == "firing"]
    assert firing and len({a.alert_id for a in firing}) == 1
    first = firing[0]
    assert _flagged_together(
        [s for s in stats if s.window.end_ts == first.window.end_ts], "num_02", {"psi", "out_of_range"}
    )
    ratio = re.search(r"variance x(\d+(\.\d+)?)", first.message)
    assert first.kind.value == "covariate_drift" and ratio and 2.4 <= float(ratio.group(1)) <= 3.6
    others = {c["detector"]: c for c in first.details["also"]}
    headline_and_others = {first.detector, *others}
    assert {"psi", "out_of_range"} <= headline_and_others
    for c in others.values():
        assert set(c) == {"kind", "detector", "statistic", "threshold", "severity", "message"}
        assert c["statistic"] >= c["threshold"]


def test_a_null_rate_spike_stays_data_quality(profile: ModelProfile) -> None:
    drift = Drift("null_spike", "num_01", start_ts=CHANGE, magnitude=0.3)
    alerts, _ = _replay(profile, [drift], STRICT)
    mine = [a for a in alerts if a.signal == "num_01" and a.status.value == "firing"]
    assert mine and {(a.kind.value, a.detector) for a in mine} == {("data_quality", "null_rate")}
    assert len({a.alert_id for a in mine}) == 1
    assert "missing values" in mine[0].message


def test_a_sentinel_beyond_the_range_stays_a_range_problem(profile: ModelProfile) -> None:
    """15 % of num_00's values replaced by -999 after the change: the histogram's low tail fills and values
    leave the range, but the window is not the reference shifted or stretched, so the one alert is
    data_quality."""
    alerts, stats = _replay(profile, [], {}, sentinel=("num_00", -999.0, 0.15))
    assert _flagged_together(stats, "num_00", {"psi", "out_of_range"})
    mine = [a for a in alerts if a.signal == "num_00" and a.status.value == "firing"]
    assert mine and {a.kind.value for a in mine} == {"data_quality"}, [(a.detector, a.message) for a in mine]
    assert len({a.alert_id for a in mine}) == 1


def test_a_wider_spread_on_many_features_is_one_covariate_alert_each_and_no_unit_change() -> None:
    """Variance x3 on ten features at once, default config: each moves its histogram and pushes values
    past the reference's range, and none is a unit change, though on several the window's extremes over the
    reference's come near a round factor (1.609, 2.54) while the mean stays put."""
    ref = generate(StreamSpec(n_numeric=10, n_categorical=1, seed=101, events_per_second=RATE), 5_000)
    builder = ReferenceBuilder(seed=0)
    builder.add_features(ref.features)
    builder.add_predictions(ref.predictions)
    wide = [Drift("variance_scale", f"num_{k:02d}", start_ts=CHANGE, magnitude=3.0) for k in range(10)]
    spec = StreamSpec(
        n_numeric=10, n_categorical=1, seed=11, events_per_second=RATE, start_ts=START, with_labels=False
    )
    stream = generate(spec, 30_000, wide)
    engine = Engine(
        parse_config({"models": {MODEL: {"reference": "unused"}}}), builder.build().models, ManualClock(0.0)
    )
    engine.record_stats(True)
    alerts = engine.process_events(Stream.FEATURES, stream.features).alerts + engine.flush()
    stats = engine.take_stats()
    features = [f"num_{k:02d}" for k in range(10)]
    assert sum(_flagged_together(stats, f, {"psi", "out_of_range"}) for f in features) >= 5
    firing = [a for a in alerts if a.signal in features and a.status.value == "firing"]
    assert {a.kind.value for a in firing} == {"covariate_drift"}
    assert sorted({a.signal for a in firing}) == features
    assert len({a.alert_id for a in firing}) == 10
    assert not [
        a.message for a in firing if "rescaled" in a.message or "rescaled" in a.details.get("hint", "")
    ]
