"""Heavy tails: the CUSUM's null spread comes from the reference's own bins, not from a normal model.

A stable stream with Student-t (2 degrees of freedom), lognormal or rare-outlier noise, replayed against a
reference drawn from the same process, raises no alert; a mean shift the default config catches on normal
data is still caught on them, by the CUSUM where no single window's histogram test can see it.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.detectors.calibration import MeanShiftCalibrator
from stream_monitor.devtools import healthy_streams as hs
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.profiles import ModelProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder

MODEL = "m"
RATE = 5.0  # events/s: a default window closes on its 300 s, 1,500 events
START = 1767225600.0
N_LIVE = 45_000  # 30 windows
N_REF = 40_000
# one feature of each kind under test, and a plain normal one for comparison
LAWS = {
    "normal": hs.FeatureLaw(loc=10.0, scale=2.0),
    "student_t2": hs.FeatureLaw("student_t", 2.0, loc=5.0, scale=2.0),
    "lognormal": hs.FeatureLaw("lognormal", 1.5, scale=10.0),
    "outliers": hs.FeatureLaw(loc=100.0, scale=5.0, outlier_rate=1e-3),
}


def _profile(laws: tuple[hs.FeatureLaw, ...]) -> ModelProfile:
    ts = hs.event_times(N_REF, START - N_REF / RATE, RATE, seed=100)
    ref = hs.draw(laws, ts, seed=100)
    builder = ReferenceBuilder(seed=0)
    builder.add_features(hs.feature_events(ref, MODEL))
    builder.add_predictions(hs.prediction_events(ref, MODEL))
    return builder.build().models[MODEL]


def _replay(profile: ModelProfile, laws: tuple[hs.FeatureLaw, ...], shift: hs.Shift | None) -> list[Alert]:
    stream = hs.draw(laws, hs.event_times(N_LIVE, START, RATE, seed=7), seed=7, shift=shift)
    engine = Engine(
        parse_config({"models": {MODEL: {"reference": "unused"}}}), {MODEL: profile}, ManualClock(0)
    )
    features, predictions = hs.feature_events(stream, MODEL), hs.prediction_events(stream, MODEL)
    alerts: list[Alert] = []
    for i in range(0, N_LIVE, 5000):
        alerts += engine.process_events(Stream.FEATURES, features[i : i + 5000]).alerts
        alerts += engine.process_events(Stream.PREDICTIONS, predictions[i : i + 5000]).alerts
    return alerts + engine.flush()


@pytest.fixture(scope="module")
def world() -> tuple[tuple[hs.FeatureLaw, ...], ModelProfile]:
    laws = tuple(LAWS.values())  # x0 normal, x1 Student-t(2), x2 lognormal, x3 rare outliers
    return laws, _profile(laws)


def test_heavy_tailed_stable_streams_raise_no_alert(world: tuple[Any, ModelProfile]) -> None:
    laws, profile = world
    alerts = _replay(profile, laws, None)
    assert alerts == [], [(a.kind.value, a.signal, a.detector, a.message) for a in alerts]


@pytest.mark.parametrize("feature", ["x0", "x1", "x2", "x3"], ids=list(LAWS))
def test_a_shift_caught_on_normal_data_is_caught_on_heavy_tails(
    world: tuple[Any, ModelProfile], feature: str
) -> None:
    """A quarter of a (normal-equivalent) sd: below what PSI's 0.1 floor sees in one window on normal data,
    where the CUSUM finds it; on every kind of noise it is found within ten windows (on the lognormal's dense
    lower bins PSI may see it first)."""
    laws, profile = world
    at = N_LIVE // 3
    alerts = _replay(profile, laws, hs.Shift(feature, at_index=at, magnitude=0.25))
    shift_ts = START + at / RATE  # about: event times are exponential gaps of mean 1 / RATE
    hits = [a for a in alerts if a.signal == feature and a.status.value == "firing"]
    assert hits, [(a.kind.value, a.signal, a.detector) for a in alerts]
    assert hits[0].detector == "cusum" or feature == "x2"
    assert hits[0].event_ts - shift_ts < 10 * 300.0
    assert not [a for a in alerts if a.kind.value == "covariate_drift" and a.signal not in (feature,)]


def test_the_window_location_is_standard_normal_without_drift_and_tracks_a_normal_shift() -> None:
    """z of windows drawn from the reference's population has mean ~0, sd ~1; a 0.3 sd shift of a normal
    feature reads as about 0.99 x 0.3 per-event sds (20 bins cost little)."""
    rng = np.random.default_rng(4)
    edges = np.array([NormalDist().inv_cdf(q) for q in np.linspace(0, 1, 21)[1:-1]])  # the true quantiles
    cal = MeanShiftCalibrator(np.full(20, 2500), seed=1)  # a reference of 50,000 without sampling error
    windows = [np.searchsorted(edges, rng.standard_normal(1500), side="right") for _ in range(400)]
    z = np.array([cal.shift(np.bincount(w, minlength=20)).z for w in windows])
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15, (z.mean(), z.std())
    shifted = np.searchsorted(edges, rng.standard_normal(20_000) + 0.3, side="right")
    assert cal.shift(np.bincount(shifted, minlength=20)).effect == pytest.approx(0.297, abs=0.015)


def test_one_huge_outlier_cannot_move_the_window_location() -> None:
    ref = np.full(20, 2000)
    cal = MeanShiftCalibrator(ref, seed=0)
    calm = np.full(20, 75)
    with_outlier = calm.copy()
    with_outlier[-1] += 1  # a value a million sds out lands in the top bin, like any other top-bin value
    assert cal.shift(with_outlier).z - cal.shift(calm).z < 0.1


def test_a_reference_without_spread_is_refused_or_reads_no_shift() -> None:
    with pytest.raises(ValueError, match="two or more bins"):
        MeanShiftCalibrator(np.array([5]))
    assert abs(MeanShiftCalibrator(np.array([0, 100, 0])).shift(np.array([0, 50, 0])).z) < 0.5
