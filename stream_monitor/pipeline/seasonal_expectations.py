"""Phase-matched references for the cyclic signals of one model: what each window is judged against.

For a feature with a configured cycle (``seasonality``, resolved to a phase table by
:class:`~stream_monitor.pipeline.model_layout.ModelLayout`), and for the score and prediction when the model
has one (``prediction.seasonality``, else the model's: they inherit the features' cycles), a closed window's
slices give its events' weights over the phases (:func:`~stream_monitor.stats.phase_mixture.phase_weights`);
the window's histogram (a numeric signal's bins, a categorical one's categories) is then compared with the
mixture of those phases (:func:`~stream_monitor.stats.phase_mixture.expected_profile`,
:func:`~stream_monitor.stats.phase_mixture.expected_categories`), at thresholds calibrated on that mixture, so
a morning window is judged against mornings and the false-alarm budget holds for the comparison actually
made. Windows covering the same phases in the same proportions (to a twentieth) share one expected profile
and one calibrator: a bounded LRU cache, so the cost per window is a few array operations unless its phase
mix is new.
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
from stream_monitor.stats.phase_mixture import (
    WEIGHT_STEPS,
    expected_categories,
    expected_profile,
    phase_weights,
    weight_signature,
)
from stream_monitor.stats.phase_profiles import PhaseCounts, PhaseTable
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

MAX_CACHED_MIXTURES: Final = 1024  # per model: (signal, phase mix) pairs kept with their calibrators

C = TypeVar("C")


@dataclass(frozen=True)
class PhaseCalibrators:
    """A phase mixture's calibrators: the distance test's thresholds and (numeric features) the CUSUM's
    mean shift."""

    threshold: ThresholdCalibrator | FixedThresholds
    mean_shift: MeanShiftCalibrator | None


Profile = NumericProfile | CategoricalProfile
P = TypeVar("P", NumericProfile, CategoricalProfile)


@dataclass(frozen=True)
class PhaseMatched(Generic[C, P]):
    """A window's expected profile for one signal, the calibrator of its thresholds, and what to report."""

    profile: P
    calibrator: C
    details: dict[str, Any]


@dataclass(frozen=True)
class _Cyclic:
    role: str
    name: str
    whole: Profile
    phases: PhaseCounts
    table: PhaseTable
    seed: int


class SeasonalExpectations(Generic[C]):
    """Expected profiles and calibrators of a model's cyclic signals, cached by phase mix.

    ``make_calibrator(role, name, profile, seed)`` is the monitor's own factory, so the phase-matched test
    uses the same statistic, floors and budget as the whole-profile one would."""

    def __init__(self, layout: ModelLayout, make_calibrator: Callable[[str, str, Profile, int], C]) -> None:
        self._make = make_calibrator
        # sketch position of each cyclic numeric / categorical signal -> what its windows are judged by
        self._numeric: dict[int, _Cyclic] = {}
        self._categorical: dict[int, _Cyclic] = {}
        outcome = layout.outcome_phase_table
        for signals, into, seed0 in (
            (layout.sketch.numeric, self._numeric, 5000),
            (layout.sketch.categorical, self._categorical, 6000),
        ):
            for i, signal in enumerate(signals):
                if signal.role == "feature":
                    table = layout.phase_tables.get(signal.name)
                    phases = table.features.get(signal.name) if table is not None else None
                else:
                    table = outcome
                    phases = table.predictions.get(signal.role) if table is not None else None
                if table is not None and phases is not None:
                    into[i] = _Cyclic(signal.role, signal.name, signal.profile, phases, table, seed0 + i)
        self._cache: OrderedDict[tuple[str, int, tuple[int, ...]], PhaseMatched[C, Any]] = OrderedDict()

    @property
    def cyclic(self) -> frozenset[int]:
        """Sketch positions of the cyclic numeric signals."""
        return frozenset(self._numeric)

    @property
    def mixtures(self) -> int:
        """(signal, phase mix) pairs cached with their calibrators."""
        return len(self._cache)

    def for_window(
        self, window: ClosedWindow
    ) -> tuple[dict[int, PhaseMatched[C, NumericProfile]], dict[int, PhaseMatched[C, CategoricalProfile]]]:
        """Sketch position -> the phase-matched reference, for every cyclic numeric and categorical signal."""
        if not self._numeric and not self._categorical:
            return {}, {}
        starts, lengths, events = window.spans()
        weights_of: dict[tuple[float, int], tuple[int, ...]] = {}

        def signature(table: PhaseTable) -> tuple[int, ...]:
            cycle = (table.period_seconds, table.phases)
            if cycle not in weights_of:
                weights_of[cycle] = weight_signature(phase_weights(starts, lengths, events, *cycle))
            return weights_of[cycle]

        numeric = {i: self._matched("n", i, c, signature(c.table)) for i, c in self._numeric.items()}
        categorical = {j: self._matched("c", j, c, signature(c.table)) for j, c in self._categorical.items()}
        return numeric, categorical

    def _matched(self, kind: str, i: int, c: _Cyclic, signature: tuple[int, ...]) -> PhaseMatched[C, Any]:
        key = (kind, i, signature)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        profile: Profile = (
            expected_profile(c.whole, c.phases, signature)
            if isinstance(c.whole, NumericProfile)
            else expected_categories(c.whole, c.phases, signature)
        )
        details = {
            "period_seconds": c.table.period_seconds,
            "phases": c.table.phases,
            "phase_weights": {str(k): s / WEIGHT_STEPS for k, s in enumerate(signature) if s},
            "reference_values": profile.count,
        }
        hit = self._cache[key] = PhaseMatched(profile, self._make(c.role, c.name, profile, c.seed), details)
        if len(self._cache) > MAX_CACHED_MIXTURES:
            self._cache.popitem(last=False)
        return hit
