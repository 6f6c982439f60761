"""Mergeable pairwise correlations, and a test for correlation changes that leave every marginal unchanged.

The values correlated are normal scores of the reference's quantile bins (:func:`normal_scores`), so the
correlation is rank-based: robust to heavy tails and rare outliers, blind to monotone rescaling.

Per window we keep four d x d sums over rows (with missing values left out pair by pair): the cross products,
the per-pair sums and sums of squares of each side, and the per-pair counts. Sums merge by addition, so the
correlation of a merged window is exactly the correlation of the union. Correlations are centred on the
*window's* means and scaled by its spreads, so mean or variance shifts (which the per-feature tests catch) do not
leak into this test; only the joint structure does.

Each pair is compared with Fisher's z (``atanh(r)``, standard error ``sqrt(1/(n-3) + 1/(m-3))`` for a window of
``n`` and a reference of ``m`` rows) and must beat a Bonferroni bound over all pairs *and* move by at least a
minimum correlation change, so huge windows do not flag trivial changes.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(5000, 2)); x[:, 1] = 0.8 * x[:, 0] + 0.6 * x[:, 1]
>>> r, n = correlations(pair_sums(x, np.ones_like(x, dtype=bool)))
>>> round(float(r[0, 1]), 2), int(n[0, 1])
(0.8, 5000)
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def normal_scores(counts: NDArray[np.int64] | Array) -> Array:
    """One score per reference bin: the standard normal quantile of the bin's middle in the reference's
    distribution. Correlating these instead of the values makes a rank correlation (van der Waerden's): a
    value's weight is bounded by its bin, so a few outliers in a heavy tail cannot move it.

    >>> normal_scores(np.array([25, 50, 25])).round(3).tolist()
    [-1.15, 0.0, 1.15]
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return np.zeros(len(c))
    upper = np.cumsum(c) / total
    middle = np.clip(upper - c / (2 * total), 1e-6, 1 - 1e-6)
    inv = NormalDist().inv_cdf
    return np.array([inv(float(q)) for q in middle])


def pair_sums(z: Array, valid: NDArray[np.bool_]) -> Array:
    """(4, d, d) sums of rows ``z`` (missing cells ignored): cross products, sums of i, sums of i^2, counts,
    each over the rows where both i and j are present."""
    d = z.shape[1]
    out = np.empty((4, d, d))
    if valid.all():  # the common case: one product; the other sums do not depend on the pair
        out[0] = z.T @ z
        out[1] = z.sum(axis=0)[:, None]
        out[2] = (z * z).sum(axis=0)[:, None]
        out[3] = float(len(z))
        return out
    v = valid.astype(np.float64)
    z0 = np.where(valid, z, 0.0)
    out[0] = z0.T @ z0
    out[1] = z0.T @ v
    out[2] = (z0 * z0).T @ v
    out[3] = v.T @ v
    return out


def correlations(sums: Array) -> tuple[Array, Array]:
    """Pairwise Pearson correlations and their row counts from :func:`pair_sums` output."""
    cross, s_i, q_i, n = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_i = s_i / n
        mean_j = mean_i.T
        cov = cross / n - mean_i * mean_j
        var_i = q_i / n - mean_i**2
        var_j = var_i.T
        r = cov / np.sqrt(var_i * var_j)
    r = np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)
    return r, n


@dataclass(frozen=True)
class PairChange:
    i: int
    j: int
    reference: float
    window: float
    z: float


@dataclass(frozen=True)
class CorrelationResult:
    level: int  # 0 none, 1 warning, 2 critical
    largest_change: float  # |window - reference| of the most significant qualifying pair (or overall)
    pairs: list[PairChange]


def correlation_test(
    window_sums: Array,
    reference: Array,
    reference_n: Array,
    alpha_warning: float,
    alpha_critical: float,
    min_change: tuple[float, float],
    min_rows: int = 30,
) -> CorrelationResult:
    r_w, n_w = correlations(window_sums)
    d = r_w.shape[0]
    iu = np.triu_indices(d, k=1)
    rw, rr, nw, nr = r_w[iu], reference[iu], n_w[iu], reference_n[iu]
    ok = np.isfinite(rw) & np.isfinite(rr) & (nw >= min_rows) & (nr >= min_rows)
    pairs = len(rw)
    if not ok.any() or pairs == 0:
        return CorrelationResult(0, 0.0, [])
    clip = 1 - 1e-9
    fz = np.arctanh(np.clip(rw, -clip, clip)) - np.arctanh(np.clip(rr, -clip, clip))
    se = np.sqrt(1.0 / np.maximum(nw - 3, 1) + 1.0 / np.maximum(nr - 3, 1))
    z = np.where(ok, np.abs(fz) / se, 0.0)
    change = np.where(ok, np.abs(rw - rr), 0.0)
    z_warn = NormalDist().inv_cdf(1 - alpha_warning / (2 * pairs))
    z_crit = NormalDist().inv_cdf(1 - alpha_critical / (2 * pairs))
    warn = (z > z_warn) & (change >= min_change[0])
    crit = (z > z_crit) & (change >= min_change[1])
    level = 2 if crit.any() else 1 if warn.any() else 0
    flagged = np.flatnonzero(warn) if level else np.argsort(-z)[:3]
    order = flagged[np.argsort(-change[flagged])][:5]
    top = [PairChange(int(iu[0][k]), int(iu[1][k]), float(rr[k]), float(rw[k]), float(z[k])) for k in order]
    largest = float(change[order[0]]) if len(order) else 0.0
    return CorrelationResult(level, largest, top)
