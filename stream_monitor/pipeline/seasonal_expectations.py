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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

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
    window_points,
)
from stream_monitor.stats.phase_model import JointPhaseModel
from stream_monitor.stats.phase_profiles import PhaseCounts, PhaseTable, phase_of
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.sketch_layout import CategoricalSignal, NumericSignal

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
    # a numeric feature's window sits inside its phases, whose profiles are averages over them: what the
    # window should show at either end of them (see phase_edges), and the share of them it leaves uncovered
    edges: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    uncovered: float = 0.0


@dataclass(frozen=True)
class _Cyclic:
    """A feature of one cycle."""

    role: str
    name: str
    whole: Profile
    phases: PhaseCounts
    table: PhaseTable
    seed: int


@dataclass(frozen=True)
class _Inherited:
    """The score or prediction, of every cycle the model's predictions are judged by, jointly."""

    role: str
    name: str
    whole: Profile
    phases: tuple[PhaseCounts, ...]
    tables: tuple[PhaseTable, ...]
    model: JointPhaseModel
    seed: int


class SeasonalExpectations(Generic[C]):
    """Expected profiles and calibrators of a model's cyclic signals, cached by phase mix.

    ``make_calibrator(role, name, profile, seed)`` is the monitor's own factory, so the phase-matched test
    uses the same statistic, floors and budget as the whole-profile one would."""

    def __init__(self, layout: ModelLayout, make_calibrator: Callable[[str, str, Profile, int], C]) -> None:
        self._make = make_calibrator
        # sketch position of each cyclic numeric / categorical signal -> what its windows are judged by
        self._numeric: dict[int, _Cyclic | _Inherited] = {}
        self._categorical: dict[int, _Cyclic | _Inherited] = {}
        self._place(layout, layout.sketch.numeric, self._numeric, 5000)
        self._place(layout, layout.sketch.categorical, self._categorical, 6000)
        self._cache: OrderedDict[tuple[str, int, tuple[tuple[int, ...], ...]], PhaseMatched[C, Any]] = (
            OrderedDict()
        )

    @staticmethod
    def _place(
        layout: ModelLayout,
        signals: Sequence[NumericSignal | CategoricalSignal],
        into: dict[int, _Cyclic | _Inherited],
        seed0: int,
    ) -> None:
        """What each cyclic signal of ``signals`` (in sketch order) is judged by."""
        outcomes = layout.outcome_phase_tables
        span = (layout.profile.start_ts, layout.profile.end_ts)
        for i, signal in enumerate(signals):
            table = layout.phase_tables.get(signal.name) if signal.role == "feature" else None
            phases = table.features.get(signal.name) if table is not None else None
            if table is not None and phases is not None:
                into[i] = _Cyclic(signal.role, signal.name, signal.profile, phases, table, seed0 + i)
            elif signal.role != "feature" and outcomes:
                each = tuple(t.predictions[signal.role] for t in outcomes)
                model = JointPhaseModel.fit(each, [(t.period_seconds, t.phases) for t in outcomes], span)
                into[i] = _Inherited(
                    signal.role, signal.name, signal.profile, each, outcomes, model, seed0 + i
                )

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

        def matched(kind: str, i: int, c: _Cyclic | _Inherited) -> PhaseMatched[C, Any]:
            if isinstance(c, _Cyclic):
                return self._matched(
                    kind, i, c, (signature(c.table),), lambda: _one_cycle(c, signature(c.table))
                )
            signatures = tuple(signature(t) for t in c.tables)
            return self._matched(
                kind, i, c, signatures, lambda: _inherited(c, signatures, starts, lengths, events)
            )

        numeric = {i: matched("n", i, c) for i, c in self._numeric.items()}
        for i, c in self._numeric.items():
            if isinstance(c, _Cyclic):
                cycle = (c.table.period_seconds, c.table.phases)
                weights = phase_weights(starts, lengths, events, *cycle)
                uncovered = float(weights @ (1.0 - phase_coverage(starts, lengths, *cycle)))
                numeric[i] = replace(numeric[i], edges=phase_edges(c.phases, weights), uncovered=uncovered)
        categorical = {j: matched("c", j, c) for j, c in self._categorical.items()}
        return numeric, categorical

    def _matched(
        self,
        kind: str,
        i: int,
        c: _Cyclic | _Inherited,
        signatures: tuple[tuple[int, ...], ...],
        expect: Callable[[], tuple[Profile, dict[str, Any]]],
    ) -> PhaseMatched[C, Any]:
        key = (kind, i, signatures)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        profile, details = expect()
        details["reference_values"] = profile.count
        hit = self._cache[key] = PhaseMatched(profile, self._make(c.role, c.name, profile, c.seed), details)
        if len(self._cache) > MAX_CACHED_MIXTURES:
            self._cache.popitem(last=False)
        return hit


def _weights(signature: tuple[int, ...]) -> dict[str, float]:
    return {str(k): s / WEIGHT_STEPS for k, s in enumerate(signature) if s}


def _one_cycle(c: _Cyclic, signature: tuple[int, ...]) -> tuple[Profile, dict[str, Any]]:
    """A feature's expected profile: the mixture of its cycle's phases."""
    profile: Profile = (
        expected_profile(c.whole, c.phases, signature)
        if isinstance(c.whole, NumericProfile)
        else expected_categories(c.whole, c.phases, signature)
    )
    details = {
        "period_seconds": c.table.period_seconds,
        "phases": c.table.phases,
        "phase_weights": _weights(signature),
    }
    return profile, details


def _inherited(
    c: _Inherited,
    signatures: tuple[tuple[int, ...], ...],
    starts: NDArray[np.float64],
    lengths: NDArray[np.float64],
    events: NDArray[np.int64],
) -> tuple[Profile, dict[str, Any]]:
    """The score's or prediction's expected profile: the joint law of its cycles over the window's times.
    A numeric one's mean moves by each cycle's mixture mean's offset (main effects), its spread is the
    whole reference's (they only word the messages)."""
    at, share = window_points(starts, lengths, events, min(t.phase_seconds for t in c.tables))
    probs, effective = c.model.expected(at, share)
    counts = np.rint(probs * effective).astype(np.int64)
    details: dict[str, Any] = {
        "period_seconds": c.tables[0].period_seconds,
        "phases": c.tables[0].phases,
        "phase_weights": _weights(signatures[0]),
    }
    if len(c.tables) > 1:
        details["cycles"] = [
            {"period_seconds": t.period_seconds, "phases": t.phases, "phase_weights": _weights(s)}
            for t, s in zip(c.tables, signatures, strict=True)
        ]
    if isinstance(c.whole, CategoricalProfile):
        return replace(c.whole, count=round(effective), counts=counts), details
    offset = sum(
        expected_profile(c.whole, pc, s).mean - c.whole.mean
        for pc, s in zip(c.phases, signatures, strict=True)
    )
    return replace(c.whole, count=round(effective), counts=counts, mean=c.whole.mean + offset), details


def phase_coverage(
    starts: NDArray[np.float64], lengths: NDArray[np.float64], period: float, phases: int
) -> NDArray[np.float64]:
    """The share of each phase's length that the intervals cover (at most 1)."""
    phase_seconds = period / phases
    at, _ = window_points(starts, lengths, np.ones(len(starts), dtype=np.int64), phase_seconds)
    per = len(at) // max(len(starts), 1)
    covered = np.bincount(
        phase_of(at, period, phases), weights=np.repeat(lengths / per, per), minlength=phases
    )
    return np.asarray(np.minimum(covered / phase_seconds, 1.0), dtype=np.float64)


def phase_edges(
    phases: PhaseCounts, weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The bin shares a window should show at the start and at the end of its phases (by their event
    ``weights``): a smooth cycle moves across a phase about linearly, from half way between the phase and
    the one before to half way between it and the one after."""
    n = phases.values.astype(np.float64)
    shares = np.where((n > 0)[:, None], phases.counts / np.maximum(n, 1.0)[:, None], np.nan)
    own = np.where(np.isnan(shares), 0.0, shares)

    def toward(neighbour: NDArray[np.float64]) -> NDArray[np.float64]:
        half = np.where(np.isnan(neighbour), own, (own + np.nan_to_num(neighbour)) / 2.0)
        return np.asarray(weights @ half, dtype=np.float64)

    return toward(np.roll(shares, 1, axis=0)), toward(np.roll(shares, -1, axis=0))
