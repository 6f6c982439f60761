"""What ``reference build`` accumulates per model and feature, and the profiles made from it: the exact
tallies, the seeded reservoir of rows, the per-model accumulator, and the signal profiles of numeric and
categorical values; :class:`~stream_monitor.stats.reference_builder.ReferenceBuilder` drives them.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

DEFAULT_BINS: Final = 20
DEFAULT_TOP_K: Final = 50
DEFAULT_MAX_ROWS: Final = 100_000
_COUNTER_PRUNE_AT: Final = 100_000
_COUNTER_KEEP: Final = 10_000
DEFAULT_PHASES: Final = 24  # a daily cycle in hours
MAX_PHASE_TABLES: Final = 4  # phase tables kept for found periods (each: phases x bins counts per feature)
MAX_CORRELATED: Final = 64  # pairwise state grows with d^2: cap the features in the correlation test


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def numeric_profile(
    values: NDArray[np.float64], nulls: int, invalid: int = 0, bins: int = DEFAULT_BINS
) -> NumericProfile:
    """Quantile edges (or midpoints between values, for a signal with few distinct values) and counts on them."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ReferenceProfileError("a numeric signal has no finite values to profile")
    distinct = np.unique(values)
    if len(distinct) <= bins:
        edges = (distinct[1:] + distinct[:-1]) / 2.0
    else:
        edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return NumericProfile(
        count=len(values),
        nulls=nulls,
        invalid=invalid,
        edges=edges.astype(np.float64),
        counts=counts.astype(np.int64),
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
    )


def categorical_profile(
    counter: Counter[Any], nulls: int, invalid: int = 0, top_k: int = DEFAULT_TOP_K, boolean: bool = False
) -> CategoricalProfile:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    top = ranked[:top_k]
    other = sum(c for _, c in ranked[top_k:])
    return CategoricalProfile(
        count=sum(counter.values()),
        nulls=nulls,
        invalid=invalid,
        categories=tuple(v for v, _ in top),
        counts=np.array([c for _, c in top] + [other], dtype=np.int64),
        distinct=len(counter),
        type="boolean" if boolean else "categorical",
    )


@dataclass
class _FeatureTally:
    numbers: int = 0
    bools: int = 0
    strings: int = 0
    nulls: int = 0
    other: int = 0
    categories: Counter[Any] = field(default_factory=Counter)

    def add(self, value: Any) -> None:
        kind = type(value)
        if kind is bool:
            self.bools += 1
            self.categories[value] += 1
        elif kind in (int, float):
            if math.isfinite(value):
                self.numbers += 1
                if kind is int:
                    self.categories[value] += 1
            else:
                self.nulls += 1
        elif kind is str:
            self.strings += 1
            self.categories[value] += 1
        elif value is None:
            self.nulls += 1
        else:
            self.other += 1
        if len(self.categories) > _COUNTER_PRUNE_AT:
            self.categories = Counter(dict(self.categories.most_common(_COUNTER_KEEP)))

    def inferred_type(self) -> str:
        present = self.numbers + self.bools + self.strings + self.other
        if present == 0:
            return "empty"
        if self.numbers >= 0.99 * present:
            return "numeric"
        if self.bools >= 0.99 * present:
            return "boolean"
        return "categorical"


class _Reservoir:
    """Algorithm R over rows; deterministic for a seed."""

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.rows: list[Any] = []
        self.seen = 0
        self._rng = rng

    def add(self, row: Any) -> None:
        self.seen += 1
        if len(self.rows) < self.capacity:
            self.rows.append(row)
        else:
            j = self._rng.randrange(self.seen)
            if j < self.capacity:
                self.rows[j] = row


# A prediction is kept under its event id; one without an id under (None, n), which no label can meet.
PredictionKey = str | tuple[None, int]


@dataclass
class _ModelAccumulator:
    reservoir: _Reservoir
    tallies: dict[str, _FeatureTally] = field(default_factory=dict)
    events: int = 0
    ts_min: float = math.inf
    ts_max: float = -math.inf
    predictions: dict[PredictionKey, tuple[Any, float | None]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    # event time of the predictions and labels kept above, for the label lag
    prediction_ts: dict[str, float] = field(default_factory=dict)
    label_ts: dict[str, float] = field(default_factory=dict)
    prediction_count: int = 0
    label_count: int = 0


def _expected_accuracy(predictions: list[tuple[Any, float | None]], positive: Any) -> float | None:
    """The label-free (CBPE) accuracy estimate of a binary classifier's reference predictions: the mean
    confidence of the predicted class, the score being the probability of the ``positive`` class
    (:func:`~stream_monitor.core.outcome_parsing.positive_class`), as the monitor reads it. ``None`` unless
    binary (``positive`` given) with scores."""
    scored = [(p, s) for p, s in predictions if s is not None and 0.0 <= s <= 1.0]
    if positive is None or not scored:
        return None
    return float(np.mean([s if p == positive else 1.0 - s for p, s in scored]))


def infer_task(values: list[Any]) -> Literal["classification", "regression"]:
    """Classification for strings, booleans and integers with few distinct values; regression otherwise."""
    kinds = set(map(type, values))
    if kinds & {str, bool}:
        return "classification"
    if kinds <= {int} and len(set(values)) <= 50:
        return "classification"
    return "regression"


def _lag_percentiles(acc: _ModelAccumulator) -> dict[str, float]:
    """Label ts minus prediction ts over the joined pairs with numeric times: p50, p90, p99 and max."""
    lags = [ts - acc.prediction_ts[k] for k, ts in acc.label_ts.items() if k in acc.prediction_ts]
    if not lags:
        return {}
    arr = np.maximum(np.asarray(lags, dtype=np.float64), 0.0)  # a label before its prediction: no wait
    p50, p90, p99 = np.quantile(arr, [0.5, 0.9, 0.99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(arr.max())}


def _as_float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan
