"""Calibrated thresholds: window-size aware, never below the effect floors, and honest about their alpha."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.detectors.calibration import ThresholdCalibrator, grid_size, per_test_alpha
from stream_monitor.detectors.sequential import Cusum
from stream_monitor.stats.divergences import psi

REF = np.array([500, 800, 1200, 1500, 1200, 800, 500, 300, 150, 50])


def test_small_windows_get_higher_thresholds_large_ones_the_floor() -> None:
    cal = ThresholdCalibrator("psi", REF, 1e-4, 1e-5, floors=(0.1, 0.25), seed=0)
    small, medium, large = cal.thresholds(50), cal.thresholds(500), cal.thresholds(200_000)
    assert small.warning > medium.warning >= large.warning == 0.1
    assert large.critical == 0.25
    assert small.critical > small.warning


def test_grid_rounds_down_so_thresholds_are_conservative() -> None:
    assert grid_size(1000) <= 1000 < grid_size(1000) * 2**0.25 + 1
    cal = ThresholdCalibrator("psi", REF, 1e-3, 1e-4, floors=(1e-6, 1e-6), seed=0)
    assert cal.thresholds(1000) == cal.thresholds(grid_size(1000))


def test_deterministic_for_a_seed() -> None:
    a = ThresholdCalibrator("js", REF, 1e-3, 1e-4, floors=(0.0001, 0.0001), seed=3).thresholds(700)
    b = ThresholdCalibrator("js", REF, 1e-3, 1e-4, floors=(0.0001, 0.0001), seed=3).thresholds(700)
    assert a == b


@pytest.mark.parametrize("statistic", ["psi", "js", "ks", "chi2"])
def test_empirical_false_alarm_rate_is_near_alpha(statistic: str) -> None:
    """Windows drawn from the reference's own population exceed the threshold about alpha of the time."""
    alpha = 0.01
    rng = np.random.default_rng(11)
    truth = REF / REF.sum()
    ref_sample = rng.multinomial(20_000, truth)
    cal = ThresholdCalibrator(statistic, ref_sample, alpha, alpha / 10, floors=(1e-9, 1e-9), seed=1)
    n = 800
    thr = cal.thresholds(n)
    windows = rng.multinomial(n, truth, size=20_000)
    fn = cal._fn
    rate = float((fn(windows, ref_sample) >= thr.warning).mean())
    assert 0.002 < rate < 0.03, rate


def test_psi_threshold_tracks_window_size() -> None:
    rng = np.random.default_rng(5)
    truth = REF / REF.sum()
    cal = ThresholdCalibrator("psi", REF * 100, 1e-3, 1e-4, floors=(1e-9, 1e-9), seed=2)
    for n in (200, 5000):
        stats = psi(rng.multinomial(n, truth, size=5000), REF * 100)
        assert float((stats >= cal.thresholds(n).warning).mean()) < 0.005


def test_budget_split() -> None:
    assert per_test_alpha(1.0, windows_per_day=100, tests=10) == pytest.approx(1e-3)
    assert per_test_alpha(1e6, windows_per_day=1, tests=1) == 0.05


def test_invalid_parameters_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        ThresholdCalibrator("nope", REF, 0.1, 0.01, floors=(0.1, 0.2))
    with pytest.raises(ValueError, match="alpha_critical"):
        ThresholdCalibrator("psi", REF, 0.01, 0.1, floors=(0.1, 0.2))
    with pytest.raises(ValueError, match="k must be"):
        Cusum(k=0)
    with pytest.raises(ValueError, match="finite"):
        Cusum().update(float("nan"))


def test_cusum_run_length_matches_its_budget_and_snapshot_restores() -> None:
    h = Cusum.h_for_run_length(500, k=0.5)
    rng = np.random.default_rng(0)
    alarms, steps = 0, 200_000
    det = Cusum(k=0.5, h=h)
    for z in rng.normal(size=steps):
        det.update(float(z))
        if det.drift_detected:
            alarms += 1
            det.reset()
    assert 0.5 / 500 < alarms / steps < 2.0 / 500
    det.update(3.0)
    copy = Cusum.restore(det.snapshot())
    for z in (0.7, 1.5, -0.2, 4.0):
        det.update(z)
        copy.update(z)
        assert (det.statistic, det.drift_detected) == (copy.statistic, copy.drift_detected)


def test_the_psi_fast_path_equals_the_general_statistic() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 500, size=12)
    cal = ThresholdCalibrator("psi", ref, 0.01, 0.001, floors=(0.0, 0.0))
    for counts in (rng.integers(0, 50, size=12), np.zeros(12, dtype=np.int64), ref):
        assert cal.statistic_of(counts) == pytest.approx(float(psi(counts, ref)), rel=1e-12, abs=1e-15)
