"""Thresholds from the reference, for the live window's size, at a stated false-alarm budget.

A fixed PSI threshold over-fires on small windows (sampling noise alone gives a large PSI) and, as a p-value
test, fires on trivial differences in huge windows. Here each threshold is the larger of

* an effect-size floor (the statistic's usual warning/critical level), which big windows cannot undercut, and
* the no-drift quantile of the statistic for a window of ``n`` events at the per-test false-alarm rate.

The no-drift distribution is simulated: windows of ``n`` events are drawn from a distribution near the reference
(a Dirichlet around the reference counts, so a small reference adds its own uncertainty), the statistic is
computed on all of them in one vectorised call, and a scaled chi-square ``a * chi2(nu)`` is matched to the
simulated mean and variance (Satterthwaite) to read off the far tail, which simulation alone could not reach.
Distances (JS, KS, Wasserstein) are matched on their square, which is the near-chi-square quantity.

The per-test rate comes from the model's budget: ``false_alerts_per_day / (windows_per_day * tests)``
(a Bonferroni split across every signal and test of the model, so the budget is per model, not per feature).

>>> cal = ThresholdCalibrator("psi", np.array([100] * 10), alpha_warning=1e-4, alpha_critical=1e-5,
...                           floors=(0.1, 0.25), seed=0)
>>> small, large = cal.thresholds(200), cal.thresholds(100_000)
>>> small.warning > 0.1, large.warning
(True, 0.1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import chdtri

from stream_monitor.stats.correlation import normal_scores
from stream_monitor.stats.divergences import SMOOTHING, STATISTICS, statistic_function

N_SIMULATIONS: Final = 2000
GRID_STEPS_PER_DOUBLING: Final = 4  # thresholds are cached on a grid of window sizes 2^(j/4)


@dataclass(frozen=True)
class Thresholds:
    warning: float
    critical: float
    null_mean: float  # mean and sd of the statistic with no drift, at this window size
    null_sd: float
    n: int  # the grid size they were computed for (at most the real window size: conservative)


def per_test_alpha(false_alerts_per_day: float, windows_per_day: float, tests: int) -> float:
    """Per-window, per-test false-alarm probability that spends the budget across all tests of a model."""
    return min(0.05, false_alerts_per_day / max(windows_per_day, 1e-9) / max(tests, 1))


def grid_size(n: int) -> int:
    """The largest grid point <= n: thresholds fall with n, so rounding down errs on the safe side."""
    if n < 2:
        return 1
    j = math.floor(math.log2(n) * GRID_STEPS_PER_DOUBLING)
    while int(2 ** ((j + 1) / GRID_STEPS_PER_DOUBLING)) <= n:  # guard against rounding in log2
        j += 1
    while int(2 ** (j / GRID_STEPS_PER_DOUBLING)) > n:
        j -= 1
    return max(1, int(2 ** (j / GRID_STEPS_PER_DOUBLING)))


def simulated_windows(
    rng: np.random.Generator,
    ref_counts: NDArray[np.float64],
    n: int,
    n_simulations: int,
    reference_uncertainty: bool = True,
) -> NDArray[np.float64]:
    """Bin counts of ``n_simulations`` no-drift windows of ``n`` events, bootstrapped from the reference's bins.

    With ``reference_uncertainty`` each window comes from its own plausible true distribution given the
    reference sample (a Dirichlet around its counts, so a small reference adds its own uncertainty); without,
    every window is resampled from the reference's own shares (the plain bootstrap). Nothing is assumed of the
    values themselves: a bin holds its share of the reference whatever the tails beyond it.
    """
    if reference_uncertainty:
        probs = rng.dirichlet(ref_counts + 0.5, size=n_simulations)
    else:
        probs = np.broadcast_to(ref_counts / ref_counts.sum(), (n_simulations, len(ref_counts)))
    # Poisson counts (normal ones once every bin expects 20+ events): one vectorised draw instead of a
    # multinomial per row; the free total changes these proportion-based statistics by O(1/n) only.
    expected = n * probs
    if n < 50:
        return rng.multinomial(n, probs).astype(np.float64)
    if expected.min() >= 20:
        return np.maximum(expected + np.sqrt(expected) * rng.standard_normal(expected.shape), 0.0)
    return rng.poisson(expected).astype(np.float64)


class ThresholdCalibrator:
    """Window-size-aware thresholds for one signal and statistic; cached per grid size, deterministic."""

    def __init__(
        self,
        statistic: str,
        ref_counts: ArrayLike,
        alpha_warning: float,
        alpha_critical: float,
        floors: tuple[float, float],
        edges: ArrayLike | None = None,
        scale: float = 1.0,
        seed: int = 0,
        n_simulations: int = N_SIMULATIONS,
    ) -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(sorted(STATISTICS))}")
        if not 0 < alpha_critical <= alpha_warning < 1:
            raise ValueError(
                f"need 0 < alpha_critical <= alpha_warning < 1, got {alpha_critical}, {alpha_warning}"
            )
        self.statistic = statistic
        self.ref_counts = np.asarray(ref_counts, dtype=np.float64)
        self.alpha_warning = alpha_warning
        self.alpha_critical = alpha_critical
        self.floors = floors
        self.seed = seed
        self.n_simulations = n_simulations
        self._fn: Callable[[ArrayLike, ArrayLike], NDArray[np.float64]] = statistic_function(
            statistic, edges, scale
        )
        self._squared = STATISTICS[statistic].squared
        self._cache: dict[int, Thresholds] = {}
        self._psi_ref: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        if statistic == "psi":
            q = (self.ref_counts + SMOOTHING) / (self.ref_counts.sum() + SMOOTHING * len(self.ref_counts))
            self._psi_ref = (q, np.log(q))

    def statistic_of(self, counts: ArrayLike) -> float:
        if self._psi_ref is not None:  # the default statistic, once per signal per window: its own fast path
            q, log_q = self._psi_ref
            c = np.asarray(counts, dtype=np.float64)
            p = (c + SMOOTHING) / (c.sum() + SMOOTHING * len(c))
            return float(np.dot(p - q, np.log(p) - log_q))
        return float(self._fn(counts, self.ref_counts))

    def thresholds(self, n: int) -> Thresholds:
        g = grid_size(n)
        cached = self._cache.get(g)
        if cached is None:
            cached = self._cache[g] = self._calibrate(g)
        return cached

    def _calibrate(self, n: int) -> Thresholds:
        rng = np.random.default_rng([self.seed, n])
        counts = simulated_windows(rng, self.ref_counts, n, self.n_simulations)
        stats = self._fn(counts, self.ref_counts)
        g = stats**2 if self._squared else stats
        mean, var = float(g.mean()), float(g.var())
        w = self._tail(mean, var, self.alpha_warning)
        c = self._tail(mean, var, self.alpha_critical)
        if self._squared:
            w, c = math.sqrt(w), math.sqrt(c)
        floor_w, floor_c = self.floors
        return Thresholds(
            warning=max(w, floor_w),
            critical=max(c, floor_c, w, floor_w),
            null_mean=float(stats.mean()),
            null_sd=float(stats.std()),
            n=n,
        )

    @staticmethod
    def _tail(mean: float, var: float, alpha: float) -> float:
        if mean <= 0 or var <= 0:
            return 0.0
        scale = var / (2 * mean)
        dof = 2 * mean * mean / var
        return float(scale * chdtri(dof, alpha))  # chi2.isf(alpha, dof), without importing scipy.stats


@dataclass(frozen=True)
class MeanShift:
    """A window's location against the reference: ``effect`` in per-event null sds, ``z`` = effect * sqrt(n)
    (standard normal under no drift, whatever the tails of the values)."""

    effect: float
    z: float


class MeanShiftCalibrator:
    """The window's mean shift for the CUSUM, with its null spread bootstrapped from the reference's bins.

    Standardising a window's raw mean by the reference sd over sqrt(n) assumes well-behaved tails: with
    Student-t noise of 2 degrees of freedom the variance is infinite, and one rare outlier both inflates the
    reference sd (blinding the test to real shifts) and drags a window's mean (a false alarm). Here the location
    of a window is the mean *normal score* of its values' reference bins (:func:`normal_scores`, bounded, rank
    based), and its no-drift mean and spread for a window of ``n`` are read off windows simulated from the
    reference's own bins (:func:`simulated_windows`), never from a normal model of the values. Cached per grid
    size like the thresholds, seeded, one vectorised draw per grid size.

    On normal data a shift of ``d`` sd moves the score mean by about ``0.99 d`` of its sd (20 quantile bins), so
    the CUSUM's tolerance and its ``mean_shift_sd`` keep their meaning; on heavy tails the test gains power.

    >>> ref = np.full(20, 5_000)  # 20 equal quantile bins
    >>> cal = MeanShiftCalibrator(ref, seed=0)
    >>> same = cal.shift(np.full(20, 100))
    >>> abs(same.z) < 1, abs(same.effect) < 0.01
    (True, True)
    >>> moved_up = cal.shift(np.r_[np.full(10, 50), np.full(10, 150)])  # half the lower half's mass moved up
    >>> round(moved_up.effect, 1), moved_up.z > 15
    (0.4, True)
    """

    def __init__(self, ref_counts: ArrayLike, seed: int = 0, n_simulations: int = N_SIMULATIONS) -> None:
        self.ref_counts = np.asarray(ref_counts, dtype=np.float64)
        if self.ref_counts.ndim != 1 or len(self.ref_counts) < 2 or self.ref_counts.sum() <= 0:
            raise ValueError("a mean shift needs the reference's counts in two or more bins, not all empty")
        self.seed = seed
        self.n_simulations = n_simulations
        self.scores = normal_scores(self.ref_counts)
        self._cache: dict[int, tuple[float, float]] = {}

    def null(self, n: int) -> tuple[float, float]:
        """The no-drift mean of the window's score mean and the per-event sd behind its spread (``sd *
        sqrt(g)`` at the grid size ``g`` <= n, so the spread is scaled to the real ``n``)."""
        g = grid_size(n)
        cached = self._cache.get(g)
        if cached is None:
            rng = np.random.default_rng([self.seed, g, 1])
            # the plain bootstrap: the reference's own error is one offset shared by every window, which the
            # CUSUM's tolerance absorbs; in the per-window spread it would be scaled up with sqrt(n)
            counts = simulated_windows(
                rng, self.ref_counts, g, self.n_simulations, reference_uncertainty=False
            )
            totals = np.maximum(counts.sum(axis=1), 1.0)
            means = counts @ self.scores / totals
            cached = self._cache[g] = (float(means.mean()), float(means.std() * math.sqrt(g)))
        return cached

    def shift(self, counts: ArrayLike) -> MeanShift:
        c = np.asarray(counts, dtype=np.float64)
        n = float(c.sum())
        if n <= 0:
            return MeanShift(0.0, 0.0)
        mean, per_event_sd = self.null(int(n))
        if per_event_sd <= 0:  # every reference value in one bin: nothing can move
            return MeanShift(0.0, 0.0)
        effect = (float(c @ self.scores) / n - mean) / per_event_sd
        return MeanShift(effect, effect * math.sqrt(n))
