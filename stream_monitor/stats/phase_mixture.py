"""What a window of a cyclic signal should look like: the mixture of the phases it covers, by its events.

A window is a run of time slices whose event counts are known; each slice's events are spread over the phases
its time span overlaps (all in one phase when the slice length divides the phase length, as it usually does).
The weights are quantised to ``1 / WEIGHT_STEPS`` so that windows covering the same phases in nearly the same
proportions share one expected profile, and one calibration of its thresholds.

The expected distribution is ``sum_k w_k * counts_k / n_k``, expressed as counts at the mixture's *effective*
reference size ``1 / sum_k (w_k^2 / n_k)``: the number of reference values the mixture is as sure of as a
profile of that many values would be (one phase alone: that phase's values), which is what the calibration's
Dirichlet around the reference counts needs. The mean and spread are those of the mixture.

A *thin* phase (few reference values: a short reference, or many phases) is shrunk toward its neighbourhood
(itself and the phases either side, pooled) by how many values it holds: ``a = n / (n + SHRINK_VALUES)`` of its
own profile, the rest of the neighbourhood's (:func:`shrinkage`). The expected profile is then a mixture of the
reference's phases with the shrunk weights, and its effective size is that mixture's, so the thresholds are
calibrated on the comparison actually made: a thin reference costs power (a smoother, less sure expectation),
not false alarms. With a few thousand values a phase, as a day's hours of a week's reference hold, it barely
moves (``a`` near 0.95).

>>> weights = phase_weights(np.array([0.0, 1800.0]), np.array([1800.0, 1800.0]), np.array([30, 10]), 3600.0, 2)
>>> weights.tolist(), weight_signature(weights)
([0.75, 0.25], (15, 5))
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.stats.phase_profiles import PhaseCounts, phase_of
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

WEIGHT_STEPS: Final = 20  # phase weights in twentieths: a window's mixture is off by 2.5% of a phase at most
_POINTS_PER_PHASE: Final = 8  # a slice's span is sampled this finely per phase it covers
SHRINK_VALUES: Final = 200.0  # a phase of this many reference values is half its own, half its neighbourhood
THIN_PHASE_VALUES: Final = 1000  # fewer values than this in a phase: reported thin by `reference build`


def phase_weights(
    starts: NDArray[np.float64],
    lengths: NDArray[np.float64],
    events: NDArray[np.int64],
    period: float,
    phases: int,
) -> NDArray[np.float64]:
    """Share of the events of the intervals ``[start, start + length)`` in each phase (uniform within an
    interval); all zeros when there are no events."""
    at, share = window_points(starts, lengths, events, period / phases)
    weights = np.bincount(phase_of(at, period, phases), weights=share, minlength=phases)
    total = float(weights.sum())
    return np.asarray(weights / total if total > 0 else weights, dtype=np.float64)


def window_points(
    starts: NDArray[np.float64], lengths: NDArray[np.float64], events: NDArray[np.int64], phase_seconds: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Times sampled evenly in each interval, finely enough for phases of ``phase_seconds``, and the share of
    the events each stands for."""
    points = _POINTS_PER_PHASE * max(1, math.ceil(float(lengths.max(initial=0.0)) / phase_seconds))
    offsets = (np.arange(points) + 0.5) / points
    at = starts[:, None] + lengths[:, None] * offsets[None, :]
    return at.ravel(), np.repeat(events.astype(np.float64) / points, points)


def weight_signature(weights: NDArray[np.float64]) -> tuple[int, ...]:
    """The weights in whole ``1 / WEIGHT_STEPS`` (largest remainders, so they still sum to one)."""
    scaled = weights * WEIGHT_STEPS
    steps = np.floor(scaled).astype(np.int64)
    short = WEIGHT_STEPS - int(steps.sum())
    if short > 0:
        steps[np.argsort(-(scaled - steps), kind="stable")[:short]] += 1
    return tuple(int(s) for s in steps)


def shrinkage(values: NDArray[np.float64], prior: float = SHRINK_VALUES) -> NDArray[np.float64]:
    """Row ``k``: the weights on the reference's phases of phase ``k``'s shrunk profile (module docstring),
    from the phases' value counts (``prior``: ``SHRINK_VALUES``, 0 for none). Each row sums to one; a phase
    with no values is left alone.

    >>> shrinkage(np.array([200.0, 200.0, 0.0, 200.0])).round(3).tolist()[0]
    [0.667, 0.167, 0.0, 0.167]
    """
    phases = len(values)
    out = np.eye(phases)
    if phases < 2:
        return out
    for k in range(phases):
        if values[k] <= 0:  # a phase the reference never saw is judged by the whole profile (below)
            continue
        around = sorted({(k - 1) % phases, k, (k + 1) % phases})
        pooled = values[around].sum()
        if pooled <= 0:
            continue
        own = values[k] / (values[k] + prior) if prior > 0 else 1.0
        out[k] *= own
        out[k, around] += (1.0 - own) * values[around] / pooled
    return out


def _mixture(
    whole_counts: NDArray[np.int64],
    whole_size: int,
    phase: PhaseCounts,
    signature: tuple[int, ...],
    prior: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], float]:
    """The window's weights on the reference's (shrunk) phases, the mixture's bin shares, which phases have
    values, and the mixture's effective reference size. A phase the reference has no values of is judged by
    the whole profile for its share (so a gap in the reference never makes a window look drifted)."""
    n = phase.values.astype(np.float64)
    seen = n > 0
    weights = (np.asarray(signature, dtype=np.float64) / WEIGHT_STEPS) @ shrinkage(n, prior)
    whole_probs = whole_counts / max(int(whole_counts.sum()), 1)
    probs = np.where(seen[:, None], phase.counts / np.maximum(n, 1.0)[:, None], whole_probs[None, :])
    size = np.where(seen, n, float(max(whole_size, 1)))
    used = weights > 0
    effective = 1.0 / float(np.sum(weights[used] ** 2 / size[used]))
    return weights, weights @ probs, seen, effective


def expected_profile(
    whole: NumericProfile, phase: PhaseCounts, signature: tuple[int, ...], prior: float = SHRINK_VALUES
) -> NumericProfile:
    """The whole profile with the counts, mean and spread a window of these phase weights should show (thin
    phases shrunk with ``prior``, see :func:`shrinkage`)."""
    w, mixture, seen, effective = _mixture(whole.counts, whole.count, phase, signature, prior)
    mean_k = np.where(seen, np.nan_to_num(phase.mean), whole.mean)
    std_k = np.where(seen, np.nan_to_num(phase.std), whole.std)
    mean = float(w @ mean_k)
    std = math.sqrt(max(float(w @ (std_k**2 + mean_k**2)) - mean**2, 0.0))
    counts = np.rint(mixture * effective).astype(np.int64)
    return replace(whole, count=round(effective), counts=counts, mean=mean, std=std)


def expected_categories(
    whole: CategoricalProfile, phase: PhaseCounts, signature: tuple[int, ...], prior: float = SHRINK_VALUES
) -> CategoricalProfile:
    """The whole categorical profile with the category frequencies a window of these phase weights should
    show (the "other" slot's included), at the mixture's effective size."""
    _, mixture, _, effective = _mixture(whole.counts, whole.count, phase, signature, prior)
    return replace(whole, count=round(effective), counts=np.rint(mixture * effective).astype(np.int64))
