"""The CUSUMs of a model's numeric features: each window's mean shift, accumulated across windows, for ramps.

The mean is of the values' normal scores on the reference's bins, its null spread bootstrapped from those bins
(:class:`~stream_monitor.detectors.calibration.MeanShiftCalibrator`): heavy tails and rare outliers neither
fire it nor blind it; the shift is in units of the window's own standard error.

The reference mean is itself an estimate, and its error is shared by every window: fed as if it were noise it
would pile up in the CUSUM. So the allowance per step is the larger of half a standard error (Page's k = 0.5)
and the smallest relevant shift (``min_effect_sd``, at least four reference standard errors) in window
standard errors: a constant offset below that never accumulates. A cyclic feature's window is judged against
the mixture of its phases, whose profiles are averages over each phase: the cycle's own movement within a phase
(``slack_sd``: how far the phases' edges sit from their average, for the part of them the window leaves
uncovered) is allowed too, or the ends of a slow cycle's phases would add up.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from stream_monitor.core.alerts import AlertKind, Severity
from stream_monitor.detectors.calibration import MeanShiftCalibrator
from stream_monitor.detectors.sequential import Cusum
from stream_monitor.pipeline.drift_explanations import _fmt
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.stats.profiles import NumericProfile

CUSUM_K: Final = 0.5


class MeanShiftCusums:
    """One two-sided CUSUM per sketch position of a numeric feature, with its whole-reference calibrator."""

    def __init__(
        self, calibrators: dict[int, MeanShiftCalibrator], alpha_warning: float, min_effect_sd: float
    ) -> None:
        h = Cusum.h_for_run_length(1.0 / alpha_warning, k=CUSUM_K)
        self.calibrators = calibrators
        self.min_effect_sd = min_effect_sd
        self.detectors = {i: Cusum(k=CUSUM_K, h=h) for i in calibrators}
        self.hold: dict[int, bool] = {}

    def __contains__(self, i: int) -> bool:
        return i in self.detectors

    def observe(
        self,
        i: int,
        name: str,
        prof: NumericProfile,
        counts: np.ndarray[Any, Any],
        n: int,
        shifts: MeanShiftCalibrator | None = None,
        slack_sd: float = 0.0,
    ) -> Observation:
        """The observation of feature ``i``'s window (``shifts``: a phase mixture's calibrator, else the
        whole reference's) against ``prof``, the profile it is judged by."""
        det = self.detectors[i]
        shift = (shifts or self.calibrators[i]).shift(counts)
        effect, z = shift.effect, shift.z
        tolerance = max(self.min_effect_sd, 4.0 / math.sqrt(max(prof.count, 1)), slack_sd)
        det.update(z, k=tolerance * math.sqrt(n))
        relevant = abs(effect) >= tolerance
        alarm = det.drift_detected and relevant
        held = self.hold.get(i, False) and relevant
        statistic = det.statistic
        if det.drift_detected:
            det.reset()
        self.hold[i] = alarm or held
        level = Severity.WARNING if alarm or held else None
        direction = "up" if effect > 0 else "down"
        details = {
            "mean_shift_sd": effect,
            "tolerance_sd": tolerance,
            "direction": direction,
            "decision_interval": det.h,
        }
        message = (
            f"{name} is drifting {direction}: CUSUM {_fmt(statistic)} > {_fmt(det.h)} (mean {effect:+.2f} sd)"
        )
        stat_for_lifecycle = max(statistic, det.h) if held else statistic
        return Observation(
            AlertKind.COVARIATE_DRIFT,
            name,
            level,
            "cusum",
            stat_for_lifecycle,
            det.h,
            det.h,
            None,
            details,
            message,
        )

    def within_phase(
        self,
        shifts: MeanShiftCalibrator | None,
        edges: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None,
        uncovered: float,
        n: int,
    ) -> float:
        """The ``slack_sd`` of a cyclic feature's window: how far the cycle alone may move its mean from its
        phases' average (the larger shift of the phases' ``edges``, times the share of the phases the window
        leaves ``uncovered``), in the units of the window's own shift."""
        if shifts is None or edges is None or uncovered <= 0:
            return 0.0
        return uncovered * max(abs(shifts.shift(share * n).effect) for share in edges)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, bool]]:
        return {str(i): c.snapshot() for i, c in self.detectors.items()}, {
            str(i): h for i, h in self.hold.items()
        }

    def restore(self, cusums: dict[str, Any], hold: dict[str, Any]) -> None:
        for key, snap in cusums.items():
            if int(key) in self.detectors:
                self.detectors[int(key)] = Cusum.restore(snap)
        self.hold = {int(k): bool(v) for k, v in hold.items()}
