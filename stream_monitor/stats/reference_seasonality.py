"""The cycles of a reference and its phase tables: what ``reference build`` keeps under ``seasonality``.

Cycles are looked for (:func:`~stream_monitor.stats.seasonality.find_periods`) in the event rate, in each
numeric feature of the sampled rows by its values' bins (rare huge outliers cannot sway a bin), in each
categorical feature by its top category's share, and in the score and prediction of every timed prediction;
each period found (the clearest first, up to ``MAX_PHASE_TABLES``) or asked for gets a phase table of every
feature's and outcome's counts per phase.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.stats.phase_profiles import (
    PhaseCounts,
    SeasonalityProfile,
    build_phase_table,
    phase_counts,
    phase_of,
)
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile, PredictionProfile, SignalProfile
from stream_monitor.stats.reference_tallies import (
    DEFAULT_PHASES,
    MAX_PHASE_TABLES,
    _as_float,
    _ModelAccumulator,
)
from stream_monitor.stats.seasonality import OUTCOME_SIGNAL_PREFIX, FoundPeriod, find_periods


def seasonality_profile(
    acc: _ModelAccumulator,
    sampled: dict[str, np.ndarray[Any, np.dtype[np.float64]]],
    features: dict[str, SignalProfile],
    scores: tuple[NDArray[np.float64], NDArray[np.bool_]] | None,
    predictions: PredictionProfile | None,
    asked: tuple[float, ...] = (),
    phases: int = DEFAULT_PHASES,
) -> SeasonalityProfile | None:
    """The cycles of the event rate, of each numeric feature in the sampled rows and of the score and
    prediction, and a phase table for each period found (at most ``MAX_PHASE_TABLES``, the clearest first)
    or asked for: every feature's and outcome's counts per phase, with the within-phase correlations of
    the correlated features' ``scores`` (rows of the sample)."""
    ts = np.array([math.nan if t is None else t for _, _, t in acc.reservoir.rows], dtype=np.float64)
    if not np.isfinite(ts).any():
        return None
    outcomes = _outcome_columns(acc, predictions)
    coded = {
        name: (_category_codes([row.get(name) for _, row, _ in acc.reservoir.rows], prof), prof.n_bins)
        for name, prof in features.items()
        if isinstance(prof, CategoricalProfile)
    }
    found: list[FoundPeriod] = find_periods(ts)
    for name, values in sampled.items():  # by the values' bins: rare huge outliers cannot hide a cycle
        prof = features[name]
        assert isinstance(prof, NumericProfile)
        bins = np.where(np.isfinite(values), np.searchsorted(prof.edges, values, side="right"), np.nan)
        found.extend(find_periods(ts, bins, name))
    # a categorical feature cycles when its top category's share does
    for name, (codes, _) in coded.items():
        found.extend(find_periods(ts, np.where(codes >= 0, codes == 0, np.nan), name))
    if outcomes is not None:
        outcome_ts, numeric_outcomes, _ = outcomes
        for name, values in numeric_outcomes.items():
            found.extend(find_periods(outcome_ts, values, OUTCOME_SIGNAL_PREFIX + name))
    clearest = sorted(found, key=lambda f: -f.autocorrelation)
    periods = list(asked)
    for f in clearest:
        if f.period_seconds not in periods and len(periods) < MAX_PHASE_TABLES + len(asked):
            periods.append(f.period_seconds)
    columns = {}
    for name, values in sampled.items():
        prof = features[name]
        assert isinstance(prof, NumericProfile)
        columns[name] = (values, prof.edges)
    tables = []
    for period in sorted(periods):
        table = build_phase_table(ts, columns, period, phases, scores, coded)
        if outcomes is not None and predictions is not None:
            table = replace(table, predictions=_outcome_phases(outcomes, predictions, period, phases))
        tables.append(table)
    return SeasonalityProfile(found=tuple(found), tables=tuple(tables))


# the outcomes' event times, their numeric columns (the score; a regression's prediction; a classifier's top
# class as 0/1, for finding cycles) and their bin codes on the outcome profiles (-1: missing)
_Outcomes = tuple[NDArray[np.float64], dict[str, NDArray[np.float64]], dict[str, NDArray[np.int64]]]


def _category_codes(values: Sequence[Any], prof: CategoricalProfile) -> NDArray[np.int64]:
    """Each value's slot in a categorical profile: its category's, "other" for any other value of the
    profile's kind, -1 for a missing or wrongly typed one (as the live parse leaves it out)."""
    index = {(type(c) is bool, c): i for i, c in enumerate(prof.categories)}
    boolean = prof.type == "boolean"
    other = len(prof.categories)
    codes = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or (type(v) is bool) != boolean or not isinstance(v, (str, int, float, bool)):
            continue
        codes[i] = index.get((type(v) is bool, v), other)
    return codes


def _outcome_columns(acc: _ModelAccumulator, predictions: PredictionProfile | None) -> _Outcomes | None:
    """The timed predictions' columns (None without predictions or their times)."""
    if predictions is None:
        return None
    ids = [k for k in acc.predictions if k in acc.prediction_ts]
    if not ids:
        return None
    ts = np.array([acc.prediction_ts[k] for k in ids], dtype=np.float64)
    numeric: dict[str, NDArray[np.float64]] = {}
    codes: dict[str, NDArray[np.int64]] = {}
    if predictions.score is not None:
        score = np.array([_as_float(acc.predictions[k][1]) for k in ids], dtype=np.float64)
        ok = np.isfinite(score)
        numeric["score"] = score
        codes["score"] = np.where(
            ok, np.searchsorted(predictions.score.edges, np.where(ok, score, 0.0), side="right"), -1
        )
    pred = predictions.prediction
    raw = [acc.predictions[k][0] for k in ids]
    if isinstance(pred, NumericProfile):
        values = np.array([_as_float(v) for v in raw], dtype=np.float64)
        ok = np.isfinite(values)
        numeric["prediction"] = values
        codes["prediction"] = np.where(
            ok, np.searchsorted(pred.edges, np.where(ok, values, 0.0), side="right"), -1
        )
    else:
        assert isinstance(pred, CategoricalProfile)
        codes["prediction"] = _category_codes(raw, pred)
        numeric["prediction"] = (codes["prediction"] == 0).astype(np.float64)  # the top class's share
    return ts, numeric, codes


def _outcome_phases(
    outcomes: _Outcomes, predictions: PredictionProfile, period: float, phases: int
) -> dict[str, PhaseCounts]:
    ts, numeric, codes = outcomes
    phase = phase_of(ts, period, phases)
    out = {}
    for name, c in codes.items():
        prof = predictions.score if name == "score" else predictions.prediction
        assert prof is not None
        ok = c >= 0
        values = numeric[name][ok] if isinstance(prof, NumericProfile) else None
        out[name] = phase_counts(phase[ok], c[ok], prof.n_bins, phases, values)
    return out
