"""Turn micro-batches of prediction and label events into columnar rows: a class slot or a number per event.

A classifier's outcome maps to its class slot (:class:`~stream_monitor.core.rows.CategoryIndex`), a
regression's is kept as a finite number; an event whose outcome is missing or of the wrong type is rejected
with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.envelope import FieldPaths, _drop, _envelope
from stream_monitor.core.events import (
    MISSING,
    FieldPath,
    Rejection,
    RejectReason,
    TimestampFormat,
    parse_timestamps,
)
from stream_monitor.core.rows import CategoryIndex, LabelRows, PredictionRows

_NUMBER_TYPES: Final = frozenset({float, int})
_CLASS_TYPES: Final = frozenset({str, int, bool})


def positive_class(classes: Sequence[Any], configured: Any = None) -> Any:
    """The class whose probability a binary model's score is: ``configured`` (``positive_class`` in the model's
    config) when set, else the larger of the two in natural order (1 over 0, True over False, "yes" over "no").

    >>> positive_class([1, 0]), positive_class(["stay", "churn"], "churn")
    (1, 'churn')
    """
    if configured is None:
        return max(classes, key=lambda c: (type(c).__name__, c))
    for c in classes:
        if type(c) is type(configured) and c == configured:  # 1 is not True here: labels, not numbers
            return c
    raise ValueError(f"positive_class {configured!r} is not one of the classes {list(classes)!r}")


def score_key(label: Any) -> str:
    """The key of a class in a ``scores`` object: JSON object keys are strings (``1`` -> "1", True -> "true")."""
    if type(label) is bool:
        return "true" if label else "false"
    return str(label)


def score_of(
    scores: dict[str, Any], positive_key: str | None, path: str = "scores"
) -> float | tuple[RejectReason, str]:
    """The score a ``scores`` object (class -> probability, found at ``path``) stands for, or why it is refused.

    For a binary model (``positive_key`` given) the positive class's probability, as a single ``score`` is; for
    a multiclass model (``positive_key`` None) the largest: the confidence of the most likely class.
    """
    if not all(type(v) in _NUMBER_TYPES and math.isfinite(v) for v in scores.values()):
        return RejectReason.WRONG_TYPE, f"{path!r} values must be finite numbers"
    if positive_key is None:
        return float(max(scores.values()))
    value = scores.get(positive_key, MISSING)
    if value is MISSING:
        return (
            RejectReason.MISSING_FIELD,
            f"{path!r} has no probability for the positive class {positive_key!r}",
        )
    return float(value)


class _OutcomeColumn:
    """Reads a prediction or a label: a class (mapped to its slot) or a number (regression)."""

    def __init__(self, path: str, classes: Sequence[Any] | None) -> None:
        self.path = FieldPath(path)
        self.index = CategoryIndex(list(classes)) if classes is not None else None

    def read(
        self, events: Sequence[dict[str, Any]], bad: dict[int, Rejection]
    ) -> tuple[list[Any], NDArray[np.float64]]:
        return self.read_values(self.path.get_all(events), bad)

    def read_values(self, raw: list[Any], bad: dict[int, Rejection]) -> tuple[list[Any], NDArray[np.float64]]:
        """The outcomes of the events not in ``bad`` (the invalid ones added to it), from their raw values."""
        if self._all_valid(raw):  # the common batch: one C-level type scan instead of a look at each value
            raw = _drop(raw, bad)
            return raw, self._values(raw)
        for i, v in enumerate(raw):
            if i in bad:
                continue
            if v is MISSING or v is None:
                bad[i] = Rejection(i, RejectReason.MISSING_FIELD, f"missing field {self.path.path!r}")
            elif self.index is None and (type(v) not in _NUMBER_TYPES or not math.isfinite(v)):
                bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.path.path!r} must be a finite number")
            elif self.index is not None and type(v) not in (str, int, bool):
                bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.path.path!r} must be a class label")
        raw = _drop(raw, bad)
        return raw, self._values(raw)

    def _all_valid(self, raw: list[Any]) -> bool:
        """Whether every value is a valid outcome (so the value-by-value look would refuse none)."""
        kinds = set(map(type, raw))
        if self.index is not None:
            return kinds <= _CLASS_TYPES
        return kinds <= _NUMBER_TYPES and bool(np.isfinite(np.asarray(raw, dtype=np.float64)).all())

    def _values(self, raw: list[Any]) -> NDArray[np.float64]:
        if self.index is None:
            return np.asarray(raw, dtype=np.float64)
        return np.fromiter(map(self.index.__getitem__, raw), dtype=np.float64, count=len(raw))


def _keep_mask(n: int, bad: Mapping[int, Rejection]) -> NDArray[np.bool_]:
    keep = np.ones(n, dtype=bool)
    if bad:
        keep[list(bad)] = False
    return keep


class PredictionParser:
    """Parses prediction events; ``classes`` is None for a regression model, ``positive`` the configured
    positive class of a binary one (see :func:`positive_class`)."""

    def __init__(
        self,
        classes: Sequence[Any] | None,
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
        positive: Any = None,
    ) -> None:
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self.classes = None if classes is None else list(classes)
        self._positive_key = (
            score_key(positive_class(self.classes, positive))
            if self.classes is not None and len(self.classes) == 2
            else None
        )
        self._outcome = _OutcomeColumn(self.paths.prediction, classes)
        self._score = FieldPath(self.paths.score)
        self._scores = FieldPath(self.paths.scores)

    def parse(self, events: Sequence[dict[str, Any]]) -> tuple[PredictionRows, list[Rejection]]:
        ids, ts, bad = _envelope(events, self.paths, self.ts_format)
        scores = self._read_scores(self._score.get_all(events), bad, events)
        raw, predicted = self._outcome.read(events, bad)
        return self._rows(ids, ts, scores, raw, predicted, bad)

    def parse_columns(
        self, ids: list[str], raw_ts: list[Any], predictions: list[Any], scores: list[Any]
    ) -> tuple[PredictionRows, list[Rejection]]:
        """Rows of events already taken apart (:mod:`~stream_monitor.core.typed_outcomes`): string ids, a
        timestamp and a prediction each, a score or :data:`MISSING` (never a ``scores`` object); the same
        rules and rejections as :meth:`parse`."""
        ts, errors = parse_timestamps(raw_ts, self.ts_format)
        bad = {i: Rejection(i, RejectReason.BAD_TIMESTAMP, f"{self.paths.ts!r}: {why}") for i, why in errors}
        values = self._read_scores(scores, bad, None)
        raw, predicted = self._outcome.read_values(predictions, bad)
        return self._rows(ids, ts, values, raw, predicted, bad)

    @staticmethod
    def _rows(
        ids: list[str],
        ts: NDArray[np.float64],
        scores: NDArray[np.float64],
        raw: list[Any],
        predicted: NDArray[np.float64],
        bad: dict[int, Rejection],
    ) -> tuple[PredictionRows, list[Rejection]]:
        keep = _keep_mask(len(ts), bad)
        rows = PredictionRows(
            ts=ts[keep], event_ids=_drop(ids, bad), predicted=predicted, score=scores[keep], raw_predicted=raw
        )
        return rows, sorted(bad.values(), key=lambda r: r.index)

    def _read_scores(
        self, single: list[Any], bad: dict[int, Rejection], events: Sequence[dict[str, Any]] | None
    ) -> NDArray[np.float64]:
        """Scores from the events' ``score`` values; an event without one is read for ``scores`` (none when
        ``events`` is None)."""
        kinds = set(map(type, single))
        if kinds <= _NUMBER_TYPES:
            out = np.asarray(single, dtype=np.float64)
            if np.isfinite(out).all():
                return out
        out = np.full(len(single), np.nan)
        for i, v in enumerate(single):
            if type(v) in _NUMBER_TYPES and math.isfinite(v):
                out[i] = v
            elif v is MISSING or v is None:
                multi = self._scores.get(events[i]) if events is not None else MISSING
                if type(multi) is dict and multi:
                    score = score_of(multi, self._positive_key, self.paths.scores)
                    if isinstance(score, float):
                        out[i] = score
                    elif i not in bad:
                        bad[i] = Rejection(i, *score)
                elif multi is not MISSING and multi is not None and i not in bad:
                    bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.paths.scores!r} must be an object")
            elif i not in bad:
                bad[i] = Rejection(
                    i, RejectReason.WRONG_TYPE, f"{self.paths.score!r} must be a finite number"
                )
        return out


class LabelParser:
    """Parses label (ground-truth) events; ``classes`` is None for a regression model."""

    def __init__(
        self,
        classes: Sequence[Any] | None,
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
    ) -> None:
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self._outcome = _OutcomeColumn(self.paths.label, classes)

    def parse(self, events: Sequence[dict[str, Any]]) -> tuple[LabelRows, list[Rejection]]:
        ids, ts, bad = _envelope(events, self.paths, self.ts_format)
        raw, label = self._outcome.read(events, bad)
        keep = _keep_mask(len(events), bad)
        rows = LabelRows(ts=ts[keep], event_ids=_drop(ids, bad), label=label, raw_label=raw)
        return rows, sorted(bad.values(), key=lambda r: r.index)
