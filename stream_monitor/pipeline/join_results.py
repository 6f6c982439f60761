"""What the joiner hands back: joined pairs, expired predictions, and its counters as plain numbers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ExpiredBatch", "JoinedBatch", "JoinerStats"]

FloatArray = npt.NDArray[np.float64]


def _no_floats() -> FloatArray:
    return np.empty(0, np.float64)


@dataclass(frozen=True, eq=False)
class ExpiredBatch:
    """Outstanding predictions whose label never arrived: evicted for age (``ttl``) or room (``capacity``).

    Ordered by prediction time. Fold them into the window of ``pred_ts`` as "no label" for label coverage.
    """

    reason: Literal["ttl", "capacity"]
    pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    predicted: FloatArray = dataclasses.field(default_factory=_no_floats)
    score: FloatArray = dataclasses.field(default_factory=_no_floats)

    def __len__(self) -> int:
        return int(self.pred_ts.size)


@dataclass(frozen=True, eq=False)
class JoinedBatch:
    """Pairs joined by one call, as parallel arrays: fold them into the window of their ``pred_ts``.

    Attributes
    ----------
    pred_ts, label_ts : numpy.ndarray of float64
        Event times of the prediction and of its label.
    predicted, score, label : numpy.ndarray of float64
        The predicted class (or value), its score (``nan`` when absent) and the label.
    stale_pred_ts : numpy.ndarray of float64
        Prediction times of pairs whose label came later than the staleness SLA: counted, not joined.
    accepted : numpy.ndarray of bool
        One flag per row given to the call: ``False`` for a duplicate (and for a label whose prediction was
        already evicted).
    evicted : ExpiredBatch
        Predictions this call evicted to stay within ``max_outstanding`` (empty for :meth:`add_labels`).
    """

    pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    label_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    predicted: FloatArray = dataclasses.field(default_factory=_no_floats)
    score: FloatArray = dataclasses.field(default_factory=_no_floats)
    label: FloatArray = dataclasses.field(default_factory=_no_floats)
    stale_pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    accepted: npt.NDArray[np.bool_] = dataclasses.field(default_factory=lambda: np.empty(0, bool))
    evicted: ExpiredBatch = dataclasses.field(default_factory=lambda: ExpiredBatch("capacity"))

    def __len__(self) -> int:
        return int(self.pred_ts.size)

    @property
    def lag(self) -> FloatArray:
        """Label lag of each pair, seconds."""
        return self.label_ts - self.pred_ts


@dataclass(frozen=True)
class JoinerStats:
    """Counters and gauges of a joiner, as plain numbers (``nan`` where undefined)."""

    outstanding: int
    early_labels: int
    predictions: int
    labels: int
    joined: int
    stale_labels: int
    duplicate_predictions: int
    duplicate_labels: int
    evicted_ttl: int
    evicted_capacity: int
    early_labels_evicted_ttl: int
    early_labels_evicted_capacity: int
    labels_after_eviction: int
    lag_p50: float
    lag_p95: float
    coverage: float
    state_bytes: int
    prediction_table_bytes: int  # the waiting predictions' hash table alone (part of state_bytes)

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict of numbers."""
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}


_COUNTERS: Final = (
    "predictions",
    "labels",
    "joined",
    "stale_labels",
    "duplicate_predictions",
    "duplicate_labels",
    "evicted_ttl",
    "evicted_capacity",
    "early_labels_evicted_ttl",
    "early_labels_evicted_capacity",
    "labels_after_eviction",
)
