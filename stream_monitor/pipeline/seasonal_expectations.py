"""Phase-matched references for the cyclic features of one model: what each window is judged against.

For a numeric feature with a configured cycle (``seasonality``, resolved to a phase table by
:class:`~stream_monitor.pipeline.model_layout.ModelLayout`), a closed window's slices give its events' weights
over the phases (:func:`~stream_monitor.stats.phase_mixture.phase_weights`); the window's histogram is then
compared with the mixture of those phases (:func:`~stream_monitor.stats.phase_mixture.expected_profile`), at
thresholds calibrated on that mixture, so a morning window is judged against mornings and the false-alarm
budget holds for the comparison actually made. Windows covering the same phases in the same proportions (to
a twentieth) share one expected profile and one calibrator: a bounded LRU cache, so the cost per window is a
few array operations unless its phase mix is new.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from stream_monitor.detectors.calibration import MeanShiftCalibrator, ThresholdCalibrator
from stream_monitor.pipeline.drift_checks import FixedThresholds
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.windows import ClosedWindow
from stream_monitor.stats.phase_mixture import WEIGHT_STEPS, expected_profile, phase_weights, weight_signature
from stream_monitor.stats.phase_profiles import PhaseTable
from stream_monitor.stats.profiles import NumericProfile

MAX_CACHED_MIXTURES: Final = 1024  # per model: (feature, phase mix) pairs kept with their calibrators

C = TypeVar("C")


@dataclass(frozen=True)
class PhaseCalibrators:
    """A phase mixture's calibrators: the distance test's thresholds and the CUSUM's mean shift."""

    threshold: ThresholdCalibrator | FixedThresholds
    mean_shift: MeanShiftCalibrator


@dataclass(frozen=True)
class PhaseMatched(Generic[C]):
    """A window's expected profile for one feature, the calibrator of its thresholds, and what to report."""

    profile: NumericProfile
    calibrator: C
    details: dict[str, Any]


class SeasonalExpectations(Generic[C]):
    """Expected profiles and calibrators of a model's cyclic numeric features, cached by phase mix.

    ``make_calibrator(role, name, profile, seed)`` is the monitor's own factory, so the phase-matched test
    uses the same statistic, floors and budget as the whole-profile one would."""

    def __init__(
        self, layout: ModelLayout, make_calibrator: Callable[[str, str, NumericProfile, int], C]
    ) -> None:
        self._make = make_calibrator
        # sketch position of each cyclic feature -> (name, whole profile, its phase table, calibrator seed)
        self._features: dict[int, tuple[str, NumericProfile, PhaseTable, int]] = {}
        for i, signal in enumerate(layout.sketch.numeric):
            table = layout.phase_tables.get(signal.name) if signal.role == "feature" else None
            if table is not None:
                self._features[i] = (signal.name, signal.profile, table, 5000 + i)
        self._cache: OrderedDict[tuple[int, tuple[int, ...]], PhaseMatched[C]] = OrderedDict()

    @property
    def cyclic(self) -> frozenset[int]:
        return frozenset(self._features)

    @property
    def mixtures(self) -> int:
        """(feature, phase mix) pairs cached with their calibrators."""
        return len(self._cache)

    def for_window(self, window: ClosedWindow) -> dict[int, PhaseMatched[C]]:
        """Sketch position -> the phase-matched reference, for every cyclic feature."""
        if not self._features:
            return {}
        starts, lengths, events = window.spans()
        out: dict[int, PhaseMatched[C]] = {}
        weights_of: dict[tuple[float, int], tuple[int, ...]] = {}
        for i, (name, whole, table, seed) in self._features.items():
            cycle = (table.period_seconds, table.phases)
            signature = weights_of.get(cycle)
            if signature is None:
                weights = phase_weights(starts, lengths, events, *cycle)
                signature = weights_of[cycle] = weight_signature(weights)
            out[i] = self._matched(i, name, whole, table, seed, signature)
        return out

    def _matched(
        self,
        i: int,
        name: str,
        whole: NumericProfile,
        table: PhaseTable,
        seed: int,
        signature: tuple[int, ...],
    ) -> PhaseMatched[C]:
        key = (i, signature)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        profile = expected_profile(whole, table.features[name], signature)
        details = {
            "period_seconds": table.period_seconds,
            "phases": table.phases,
            "phase_weights": {str(k): s / WEIGHT_STEPS for k, s in enumerate(signature) if s},
            "reference_values": profile.count,
        }
        hit = self._cache[key] = PhaseMatched(profile, self._make("feature", name, profile, seed), details)
        if len(self._cache) > MAX_CACHED_MIXTURES:
            self._cache.popitem(last=False)
        return hit
