"""Mergeable per-window performance of a model from joined (prediction, label) pairs.

A :class:`PerformanceSketch` holds only counts and sums of fixed size, so a window's figures can be revised as
late labels arrive (fold more pairs), partial sketches from several partitions can be merged, and the whole
thing serialises to plain data. Everything is vectorised per batch with :func:`numpy.bincount`.
The figures are derived from those counts in :mod:`~stream_monitor.stats.performance_metrics`.

Three tasks are supported:

``binary``
    ``predicted`` and ``labels`` are 0/1; ``scores`` is the model's probability of class 1 (``nan`` when
    absent). Confusion counts give accuracy, precision, recall and F1 (class 1 is positive); a histogram of
    scores per true class on ``n_score_bins`` equal bins of [0, 1] gives AUC (trapezoid over the binned ROC)
    and ECE; exact sums give the Brier score and log loss.
``multiclass``
    ``predicted`` and ``labels`` are class indices in ``[0, n_classes)``; ``scores`` is the confidence of the
    predicted class. Accuracy and macro precision/recall/F1 from the confusion matrix; ECE of the confidence.
    AUC, Brier and log loss need the full probability vector and are ``nan``.
``regression``
    MAE, RMSE and mean error (bias) from exact sums; ``scores`` is ignored.

The sketch also accumulates, from *every* prediction whether or not its label ever arrives
(:meth:`PerformanceSketch.fold_predictions`), the exact sums that confidence-based performance estimation
(the idea of NannyML's CBPE, re-implemented from its public description) needs: with calibrated scores, a
prediction of class 1 with score ``s`` is a true positive with probability ``s`` and a false positive with
probability ``1 - s``, so expected confusion counts, and from them expected accuracy, precision, recall and
F1, follow without labels. See :meth:`PerformanceSketch.expected_performance`.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

import numpy as np
import numpy.typing as npt

from stream_monitor.stats.performance_metrics import expected_metrics, realised_metrics

__all__ = ["PerformanceSketch", "Task", "expected_performance"]

Task = Literal["binary", "multiclass", "regression"]
_TASKS: Final = ("binary", "multiclass", "regression")
_FORMAT: Final = "stream-monitor.performance/v1"
_LOG_EPS: Final = 1e-15

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = npt.ArrayLike


class PerformanceSketch:
    """Counts and sums from which a window's performance metrics are derived; mergeable.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
        What the model predicts.
    n_classes : int
        Number of classes (``binary`` requires 2). Ignored for regression.
    n_score_bins : int
        Equal-width score bins on [0, 1] for AUC and calibration (ECE).

    Examples
    --------
    >>> import numpy as np
    >>> sk = PerformanceSketch("binary")
    >>> sk.fold(np.array([1, 0, 1, 1]), np.array([0.9, 0.2, 0.7, 0.6]), np.array([1, 0, 0, 1]))
    >>> m = sk.metrics()
    >>> m["accuracy"], round(m["precision"], 3), m["recall"], m["auc"]
    (0.75, 0.667, 1.0, 0.75)
    """

    def __init__(self, task: Task = "binary", n_classes: int = 2, n_score_bins: int = 50) -> None:
        if task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
        if task == "binary" and n_classes != 2:
            raise ValueError(f"a binary task has n_classes=2, got {n_classes}")
        if task == "multiclass" and (not isinstance(n_classes, int) or n_classes < 2):
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if not isinstance(n_score_bins, int) or n_score_bins < 1:
            raise ValueError(f"n_score_bins must be an int >= 1, got {n_score_bins!r}")
        self.task: Task = task
        self.n_classes = 0 if task == "regression" else n_classes
        self.n_score_bins = n_score_bins
        k, b = self.n_classes, n_score_bins
        # Labelled pairs. confusion[label, predicted]; score_hist[outcome, bin] where outcome is the true
        # class (binary) or correctness (multiclass); score_sum[bin] is the exact sum of scores in each bin.
        self._confusion: IntArray = np.zeros((k, k), np.int64)
        self._score_hist: IntArray = np.zeros((2, b) if k else (0, 0), np.int64)
        self._score_sum: FloatArray = np.zeros(b if k else 0, np.float64)
        # sums: count, brier, log_loss (binary); abs_err, sq_err, err (regression)
        self._sums: dict[str, float] = dict.fromkeys(self._sum_names(), 0.0)
        self._count = 0
        # Every prediction (labelled or not), for the label-free estimate: expected confusion counts.
        self._n_predictions = 0
        self._predicted_counts: IntArray = np.zeros(k, np.int64)
        self._expected: dict[str, float] = dict.fromkeys(("n", "tp", "fp", "fn", "tn", "confidence"), 0.0)

    def _sum_names(self) -> tuple[str, ...]:
        if self.task == "regression":
            return ("abs_err", "sq_err", "err")
        return ("brier", "log_loss")

    # ----------------------------------------------------------------------------------------------- folding
    def _classes(self, name: str, values: ArrayLike) -> IntArray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional")
        if not np.all((arr >= 0) & (arr < self.n_classes)):  # also rejects nan
            raise ValueError(f"{name} must be class indices in [0, {self.n_classes})")
        cls = arr.astype(np.int64)
        if not np.array_equal(cls, arr):
            raise ValueError(f"{name} must be class indices in [0, {self.n_classes})")
        return cls

    def _scores(self, scores: ArrayLike | None, n: int) -> FloatArray:
        if scores is None:
            return np.full(n, np.nan)
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"scores has shape {s.shape}, expected ({n},)")
        if np.any((s < 0.0) | (s > 1.0)):
            raise ValueError("scores must lie in [0, 1] (nan when absent)")
        return s

    def _bins(self, s: FloatArray) -> IntArray:
        return np.minimum((s * self.n_score_bins).astype(np.int64), self.n_score_bins - 1)

    def fold(self, predicted: ArrayLike, scores: ArrayLike | None, labels: ArrayLike) -> None:
        """Add joined (prediction, label) pairs.

        Parameters
        ----------
        predicted : array_like
            Predicted class indices, or predicted values for regression.
        scores : array_like or None
            Binary: probability of class 1; multiclass: confidence of the predicted class; ``nan`` (or
            ``None`` for the whole batch) when absent. Ignored for regression.
        labels : array_like
            True class indices, or true values for regression.
        """
        if self.task == "regression":
            p = np.asarray(predicted, dtype=np.float64)
            y = np.asarray(labels, dtype=np.float64)
            if p.shape != y.shape or p.ndim != 1:
                raise ValueError("predicted and labels must be one-dimensional and of equal length")
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
                raise ValueError("predicted and labels must be finite")
            err = p - y
            self._count += int(err.size)
            self._sums["err"] += float(err.sum())
            self._sums["abs_err"] += float(np.abs(err).sum())
            self._sums["sq_err"] += float(np.dot(err, err))
            return
        pc = self._classes("predicted", predicted)
        yc = self._classes("labels", labels)
        if pc.shape != yc.shape:
            raise ValueError("predicted and labels must have equal length")
        s = self._scores(scores, pc.size)
        k = self.n_classes
        self._count += int(pc.size)
        self._confusion += np.bincount(yc * k + pc, minlength=k * k).reshape(k, k)
        has = ~np.isnan(s)
        if not has.any():
            return
        s, pc, yc = s[has], pc[has], yc[has]
        bins = self._bins(s)
        b = self.n_score_bins
        outcome = yc if self.task == "binary" else (pc == yc).astype(np.int64)
        self._score_hist += np.bincount(outcome * b + bins, minlength=2 * b).reshape(2, b)
        self._score_sum += np.bincount(bins, weights=s, minlength=b)
        if self.task == "binary":
            yf = yc.astype(np.float64)
            self._sums["brier"] += float(np.dot(s - yf, s - yf))
            sc = np.clip(s, _LOG_EPS, 1.0 - _LOG_EPS)
            self._sums["log_loss"] -= float(np.sum(np.where(yc == 1, np.log(sc), np.log1p(-sc))))

    def fold_predictions(self, predicted: ArrayLike, scores: ArrayLike | None) -> None:
        """Add predictions, labelled or not, for the prediction mix and the label-free estimate.

        Call this once per prediction when it arrives; :meth:`fold` is for the pairs once labels arrive.

        Parameters
        ----------
        predicted : array_like
            Predicted class indices (for regression only their number is kept).
        scores : array_like or None
            As in :meth:`fold`; predictions without a score are counted but not estimated.
        """
        if self.task == "regression":
            self._n_predictions += int(np.asarray(predicted).size)
            return
        pc = self._classes("predicted", predicted)
        self._n_predictions += int(pc.size)
        s = self._scores(scores, pc.size)
        self._predicted_counts += np.bincount(pc, minlength=self.n_classes)
        has = ~np.isnan(s)
        s, pc = s[has], pc[has]
        e = self._expected
        e["n"] += float(s.size)
        e["confidence"] += float(np.where(pc == 1, s, 1.0 - s).sum() if self.task == "binary" else s.sum())
        if self.task == "binary":
            pos = pc == 1
            sp, sn = float(s[pos].sum()), float(s[~pos].sum())
            n_pos = float(np.count_nonzero(pos))
            e["tp"] += sp
            e["fp"] += n_pos - sp
            e["fn"] += sn
            e["tn"] += float(s.size) - n_pos - sn

    # ------------------------------------------------------------------------------------------------ merging
    def _check_compatible(self, other: PerformanceSketch) -> None:
        mine = (self.task, self.n_classes, self.n_score_bins)
        theirs = (other.task, other.n_classes, other.n_score_bins)
        if mine != theirs:
            raise ValueError(
                f"cannot merge sketches with (task, n_classes, n_score_bins) {mine} and {theirs}"
            )

    def merge(self, other: PerformanceSketch) -> None:
        """Add another sketch of the same shape into this one (in place)."""
        self._check_compatible(other)
        self._count += other._count
        self._n_predictions += other._n_predictions
        self._confusion += other._confusion
        self._score_hist += other._score_hist
        self._score_sum += other._score_sum
        self._predicted_counts += other._predicted_counts
        for key, value in other._sums.items():
            self._sums[key] += value
        for key, value in other._expected.items():
            self._expected[key] += value

    def __iadd__(self, other: PerformanceSketch) -> PerformanceSketch:
        self.merge(other)
        return self

    # ------------------------------------------------------------------------------------------------ metrics
    @property
    def count(self) -> int:
        """Number of labelled pairs folded."""
        return self._count

    @property
    def prediction_count(self) -> int:
        """Number of predictions folded by :meth:`fold_predictions`, labelled or not."""
        return self._n_predictions

    def metrics(self) -> dict[str, float]:
        """Realised metrics of the labelled pairs; ``nan`` where undefined (e.g. no positives for AUC).

        Returns
        -------
        dict of str to float
            ``count`` always. Classifiers: ``accuracy``, ``error_rate``, ``precision``, ``recall``, ``f1``
            (class 1 for binary, macro average over classes for multiclass), ``scored_count``, ``ece``,
            ``auc``, ``brier``, ``log_loss``. Regression: ``mae``, ``rmse``, ``mean_error``.
        """
        return realised_metrics(
            self.task, self._count, self._confusion, self._score_hist, self._score_sum, self._sums
        )

    def expected_performance(self) -> dict[str, float]:
        """Label-free estimate from the scores of every folded prediction (CBPE-style).

        Valid when the scores are calibrated. For ``binary``: expected confusion counts per prediction
        (``tp += s`` and ``fp += 1 - s`` when class 1 is predicted, ``fn += s`` and ``tn += 1 - s``
        otherwise), summed exactly, give ``expected_accuracy``, ``expected_precision``, ``expected_recall``
        and ``expected_f1``. For ``multiclass`` the expected accuracy is the mean confidence of the predicted
        class.

        Returns
        -------
        dict of str to float
            ``estimated_count`` (predictions with a score) and the ``expected_*`` figures (``nan`` when
            undefined); empty for regression.
        """
        return expected_metrics(self.task, self._expected)

    def predicted_counts(self) -> IntArray:
        """Count of every folded prediction per predicted class (a copy)."""
        return self._predicted_counts.copy()

    # ------------------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (ints, floats, lists), versioned; :meth:`from_dict` inverts it exactly."""
        return {
            "format": _FORMAT,
            "task": self.task,
            "n_classes": self.n_classes,
            "n_score_bins": self.n_score_bins,
            "count": self._count,
            "prediction_count": self._n_predictions,
            "confusion": self._confusion.tolist(),
            "score_hist": self._score_hist.tolist(),
            "score_sum": self._score_sum.tolist(),
            "sums": dict(self._sums),
            "predicted_counts": self._predicted_counts.tolist(),
            "expected": dict(self._expected),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceSketch:
        """Rebuild a sketch from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If the data is of another format or its arrays do not fit the declared shape.
        """
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} sketch: format {data.get('format')!r}")
        task = cast(Task, data["task"])
        sk = cls(task, int(data["n_classes"]) if task != "regression" else 2, int(data["n_score_bins"]))
        try:
            sk._count = int(data["count"])
            sk._n_predictions = int(data["prediction_count"])
            sk._confusion = np.asarray(data["confusion"], np.int64).reshape(sk._confusion.shape)
            sk._score_hist = np.asarray(data["score_hist"], np.int64).reshape(sk._score_hist.shape)
            sk._score_sum = np.asarray(data["score_sum"], np.float64).reshape(sk._score_sum.shape)
            sk._predicted_counts = np.asarray(data["predicted_counts"], np.int64).reshape(
                sk._predicted_counts.shape
            )
            sums, expected = dict(data["sums"]), dict(data["expected"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed {_FORMAT} sketch: {exc}") from exc
        if set(sums) != set(sk._sums) or set(expected) != set(sk._expected):
            raise ValueError(f"malformed {_FORMAT} sketch: unexpected sums")
        sk._sums = {k: float(v) for k, v in sums.items()}
        sk._expected = {k: float(v) for k, v in expected.items()}
        return sk

    def __repr__(self) -> str:
        return f"PerformanceSketch(task={self.task!r}, n_classes={self.n_classes}, count={self._count})"


def expected_performance(predicted: ArrayLike, scores: ArrayLike, task: Task = "binary") -> dict[str, float]:
    """Label-free performance estimate of a batch of predictions with calibrated scores.

    A convenience over :meth:`PerformanceSketch.expected_performance` for one batch.

    Examples
    --------
    >>> round(expected_performance([1, 0, 1], [0.9, 0.2, 0.6])["expected_accuracy"], 4)
    0.7667
    """
    n_classes = 2
    if task == "multiclass":
        n_classes = max(2, int(np.max(np.asarray(predicted), initial=0)) + 1)
    sk = PerformanceSketch(task, n_classes)
    sk.fold_predictions(predicted, scores)
    return sk.expected_performance()
