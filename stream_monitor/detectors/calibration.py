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
        # Plausible true distributions given the reference sample, then windows of n events from each.
        probs = rng.dirichlet(self.ref_counts + 0.5, size=self.n_simulations)
        # Poisson counts (normal ones once every bin expects 20+ events): one vectorised draw instead of a
        # multinomial per row; the free total changes these proportion-based statistics by O(1/n) only.
        expected = n * probs
        if n < 50:
            counts = rng.multinomial(n, probs)
        elif expected.min() >= 20:
            counts = np.maximum(expected + np.sqrt(expected) * rng.standard_normal(expected.shape), 0.0)
        else:
            counts = rng.poisson(expected)
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
