"""A signal that inherits several cycles at once (a model's score, from features of different periods): what a
window should show, from the reference's profiles per phase of each cycle.

No single cycle's phases describe such a signal: a window at 10:20 sees the daily cycle's 10:00 phase *and*
the four-hour cycle's phase 14, and the reference's 10:00 profile averages over whatever the four-hour cycle
did then. The joint law is taken to be log-linear in the cycles (main effects, no interactions)::

    p(bin | phases k_1 .. k_m)  proportional to  prod_c f_c(k_c, bin)

fitted by iterative proportional fitting so that, over the reference's timeline, every cycle's phase profiles
are reproduced (each cycle's profile of phase ``k`` is the average of the joint law over the reference times in
that phase). The timeline is the reference's span at a fine grid, taken as evenly covered; with one cycle the
fit is exact in one step and the law is that cycle's phase profile. Thin phases are shrunk first
(:func:`~stream_monitor.stats.phase_mixture.shrinkage`).

A window's expected bin shares average the joint law over its events' times. Its effective reference size
combines each cycle's mixture size (as :mod:`~stream_monitor.stats.phase_mixture` reckons it, thin phases
shrunk) harmonically (``1 / n = sum_c sum_k w_ck^2 / n_ck``): the uncertainty of every cycle's profiles adds
up, so the calibration is no surer than the least sure of them.

>>> import numpy as np
>>> from stream_monitor.stats.phase_profiles import PhaseCounts
>>> nan = np.full(2, np.nan)
>>> slow = PhaseCounts(np.array([[9000, 1000], [1000, 9000]]), nan, nan)  # phase 0 of 3600 s: bin 0 mostly
>>> fast = PhaseCounts(np.array([[5000, 5000], [5000, 5000]]), nan, nan)  # the 600 s cycle: nothing
>>> model = JointPhaseModel.fit([slow, fast], [(3600.0, 2), (600.0, 2)], (0.0, 4 * 3600.0))
>>> probs, size = model.expected(np.array([100.0, 200.0]), np.array([0.5, 0.5]))
>>> np.round(probs, 2).tolist(), size > 0
([0.89, 0.11], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.stats.phase_mixture import SHRINK_VALUES, shrinkage
from stream_monitor.stats.phase_profiles import PhaseCounts, phase_of

FIT_ITERATIONS: Final = 30
FIT_TOLERANCE: Final = 1e-4  # of a log-factor's step: the fit has converged
GRID_POINTS_PER_PHASE: Final = 2  # the timeline's grid: this many points in the shortest phase
MAX_GRID_POINTS: Final = 2_000_000  # a bound on the fit's work (a coarser grid beyond it)


@dataclass(frozen=True)
class JointPhaseModel:
    """The fitted log-factors of each cycle, and what the effective reference size needs."""

    cycles: tuple[tuple[float, int], ...]  # (period_seconds, phases) of each cycle
    log_factors: tuple[NDArray[np.float64], ...]  # (phases, bins) each
    values: tuple[NDArray[np.float64], ...]  # reference values per phase of each cycle
    shrunk: tuple[NDArray[np.float64], ...]  # each cycle's shrinkage of thin phases (phases, phases)

    @classmethod
    def fit(
        cls,
        profiles: Sequence[PhaseCounts],
        cycles: Sequence[tuple[float, int]],
        span: tuple[float, float],
        prior: float = SHRINK_VALUES,
    ) -> JointPhaseModel:
        """The law over ``cycles`` reproducing each cycle's phase ``profiles`` (same bins) over ``span``."""
        if not profiles or len(profiles) != len(cycles):
            raise ValueError("a joint phase model needs one phase profile per cycle, at least one")
        bins = profiles[0].counts.shape[1]
        if any(p.counts.shape[1] != bins for p in profiles):
            raise ValueError("every cycle's phase profiles must count the same bins")
        start, end = span
        step = min(period / phases for period, phases in cycles) / GRID_POINTS_PER_PHASE
        step = max(step, (end - start) / MAX_GRID_POINTS) if end > start else 1.0
        grid = np.asarray(
            start + step * (np.arange(max(1, math.ceil((end - start) / step))) + 0.5), np.float64
        )
        every = np.stack([phase_of(grid, period, phases) for period, phases in cycles], axis=1)
        rows, counts = np.unique(every, axis=0, return_counts=True)  # the timeline, as joint phases
        joint: NDArray[np.int64] = np.asarray(rows, dtype=np.int64)
        weight: NDArray[np.float64] = counts.astype(np.float64)
        targets: list[NDArray[np.float64]] = []
        values: list[NDArray[np.float64]] = []
        shrunk: list[NDArray[np.float64]] = []
        for pc, (_, phases) in zip(profiles, cycles, strict=True):
            n = pc.values.astype(np.float64)
            shrunk.append(shrinkage(n, prior))
            shares = pc.counts / np.maximum(n, 1.0)[:, None]
            seen = n > 0
            whole = pc.counts.sum(axis=0) / max(float(pc.counts.sum()), 1.0)
            shares[~seen] = whole  # a phase never seen: the whole profile
            time_in_phase = np.bincount(joint[:, len(targets)], weights=weight, minlength=phases)
            targets.append((shrunk[-1] @ shares) * time_in_phase[:, None])
            values.append(np.where(seen, n, float(max(pc.counts.sum(), 1))))
        logs = [np.zeros((phases, bins)) for _, phases in cycles]
        # each cycle's phases as a (phases, rows) indicator, so a cycle's fitted counts are one product
        member = [np.eye(phases)[:, joint[:, c]] * weight for c, (_, phases) in enumerate(cycles)]
        for _ in range(FIT_ITERATIONS if len(cycles) > 1 else 1):
            worst = 0.0
            for c, target in enumerate(targets):
                change = np.log((target + 1e-9) / (member[c] @ _law(logs, joint) + 1e-9))
                logs[c] += change
                worst = max(worst, float(np.abs(change).max()))
            if worst < FIT_TOLERANCE:
                break
        return cls(tuple((float(p), int(k)) for p, k in cycles), tuple(logs), tuple(values), tuple(shrunk))

    def expected(
        self, at: NDArray[np.float64], share: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float]:
        """Bin shares a window should show whose events fell at times ``at`` in shares ``share``, and the
        effective reference size of that expectation."""
        joint = np.stack([phase_of(at, period, phases) for period, phases in self.cycles], axis=1)
        total = float(share.sum())
        w = share / total if total > 0 else np.full(len(share), 1.0 / max(len(share), 1))
        probs = w @ _law(list(self.log_factors), joint)
        inverse = 0.0
        for c, (_, phases) in enumerate(self.cycles):
            on = np.bincount(joint[:, c], weights=w, minlength=phases) @ self.shrunk[c]  # as the mixture's
            inverse += float(np.sum(on**2 / self.values[c]))
        return np.asarray(probs / probs.sum(), dtype=np.float64), 1.0 / inverse


def _law(logs: list[NDArray[np.float64]], joint: NDArray[np.int64]) -> NDArray[np.float64]:
    """The joint law's bin shares at each row of joint phases."""
    total = sum(log[joint[:, c]] for c, log in enumerate(logs))
    assert isinstance(total, np.ndarray)
    total -= total.max(axis=1, keepdims=True)
    law = np.exp(total)
    return np.asarray(law / law.sum(axis=1, keepdims=True), dtype=np.float64)
