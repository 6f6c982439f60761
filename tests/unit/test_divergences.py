"""Statistics from binned counts agree with their textbook definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stream_monitor.stats.divergences import (
    chi2_divergence,
    chi2_p_value,
    js_distance,
    ks,
    psi,
    statistic_function,
    wasserstein,
)


def test_identical_distributions_score_zero() -> None:
    ref = np.array([10, 20, 30, 40])
    for fn in (psi, js_distance, ks, chi2_divergence):
        assert float(fn(ref, ref)) == pytest.approx(0.0, abs=1e-9)
        assert float(fn(ref * 30, ref)) < 1e-2  # same shape, other size: only the smoothing differs


def test_psi_of_a_known_shift() -> None:
    live, ref = np.array([30, 70]), np.array([50, 50])
    p, q = (live + 0.5) / 101, (ref + 0.5) / 101
    assert float(psi(live, ref)) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))


def test_vectorised_over_leading_axes() -> None:
    ref = np.array([25, 25, 25, 25])
    live = np.array([[25, 25, 25, 25], [40, 30, 20, 10], [10, 20, 30, 40]])
    out = psi(live, ref)
    assert out.shape == (3,)
    assert out[0] == pytest.approx(0.0) and out[1] == pytest.approx(out[2])


def test_ks_on_bins_matches_scipy_when_samples_sit_on_bin_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 10, 3000), rng.integers(2, 10, 3000)
    counts_a, counts_b = np.bincount(a, minlength=10), np.bincount(b, minlength=10)
    assert float(ks(counts_a, counts_b)) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-9)


def test_wasserstein_on_bins_approximates_scipy() -> None:
    rng = np.random.default_rng(1)
    ref, live = rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000)
    edges = np.quantile(ref, np.linspace(0.01, 0.99, 99))
    c_ref = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=100)
    c_live = np.bincount(np.searchsorted(edges, live, side="right"), minlength=100)
    assert float(wasserstein(c_live, c_ref, edges)) == pytest.approx(
        stats.wasserstein_distance(ref, live), rel=0.1
    )


def test_js_distance_bounds() -> None:
    assert 0.9 < float(js_distance(np.array([1000, 0]), np.array([0, 1000]))) <= 1.0


def test_chi2_p_value_matches_scipy() -> None:
    live, ref = np.array([30, 50, 20]), np.array([300, 400, 300])
    div = float(chi2_divergence(live, ref))
    expected = stats.chisquare(live, ref / ref.sum() * live.sum()).pvalue
    assert chi2_p_value(div, int(live.sum()), 3) == pytest.approx(expected, rel=0.05)


def test_unknown_statistic_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: chi2, js, ks, psi, wasserstein"):
        statistic_function("hellinger")
