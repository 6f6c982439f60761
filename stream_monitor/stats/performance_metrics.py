"""Performance metrics derived from a :class:`~stream_monitor.stats.performance.PerformanceSketch`'s counts.

Realised metrics come from the labelled pairs (confusion counts, binned scores per outcome, exact sums); the
label-free estimate (CBPE-style) from the expected confusion counts of every scored prediction. Each function
reads fixed-size arrays and sums only, so a figure can be recomputed whenever late labels revise a window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from stream_monitor.stats.performance import Task

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def _f1(tp: float, fp: float, fn: float) -> float:
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn)


def realised_metrics(
    task: Task,
    count: int,
    confusion: IntArray,
    score_hist: IntArray,
    score_sum: FloatArray,
    sums: Mapping[str, float],
) -> dict[str, float]:
    """The figures of :meth:`PerformanceSketch.metrics`, from the sketch's labelled counts and sums."""
    n = float(count)
    out: dict[str, float] = {"count": n}
    if task == "regression":
        out["mae"] = _ratio(sums["abs_err"], n)
        mse = _ratio(sums["sq_err"], n)
        out["rmse"] = math.sqrt(mse) if not math.isnan(mse) else math.nan
        out["mean_error"] = _ratio(sums["err"], n)
        return out
    cm = confusion.astype(np.float64)
    correct = float(np.trace(cm))
    out["accuracy"] = _ratio(correct, n)
    out["error_rate"] = _ratio(n - correct, n)
    if task == "binary":
        tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
        out["precision"] = _ratio(tp, tp + fp)
        out["recall"] = _ratio(tp, tp + fn)
        out["f1"] = _f1(tp, fp, fn)
    else:
        tp_k = np.diag(cm)
        pred_k, true_k = cm.sum(axis=0), cm.sum(axis=1)
        present = (pred_k + true_k) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(pred_k > 0, tp_k / pred_k, 0.0)
            rec = np.where(true_k > 0, tp_k / true_k, 0.0)
            f1 = np.where(present, 2 * tp_k / (pred_k + true_k), 0.0)
        k = int(present.sum())
        out["precision"] = float(prec[present].sum() / k) if k else math.nan
        out["recall"] = float(rec[present].sum() / k) if k else math.nan
        out["f1"] = float(f1[present].sum() / k) if k else math.nan
    hist = score_hist
    scored = float(hist.sum())
    out["scored_count"] = scored
    out["ece"] = binned_ece(score_hist, score_sum)
    if task == "binary":
        out["auc"] = binned_auc(score_hist)
        out["brier"] = _ratio(sums["brier"], scored)
        out["log_loss"] = _ratio(sums["log_loss"], scored)
    else:
        out["auc"] = out["brier"] = out["log_loss"] = math.nan
    return out


def binned_auc(score_hist: IntArray) -> float:
    """Area under the ROC through the bin edges: P(s+ > s-) + P(same bin) / 2."""
    neg, pos = score_hist[0].astype(np.float64), score_hist[1].astype(np.float64)
    n_neg, n_pos = neg.sum(), pos.sum()
    if n_neg == 0 or n_pos == 0:
        return math.nan
    pos_above = np.cumsum(pos[::-1])[::-1] - pos  # positives in strictly higher bins
    return float(np.dot(neg, pos_above + 0.5 * pos) / (n_neg * n_pos))


def binned_ece(score_hist: IntArray, score_sum: FloatArray) -> float:
    """Expected calibration error: sum over bins of (share of events) * |mean score - observed rate|."""
    count = score_hist.sum(axis=0).astype(np.float64)
    total = count.sum()
    if total == 0:
        return math.nan
    filled = count > 0
    gap = np.abs(score_sum[filled] - score_hist[1][filled]) / count[filled]
    return float(np.dot(count[filled], gap) / total)


def expected_metrics(task: Task, expected: Mapping[str, float]) -> dict[str, float]:
    """The figures of :meth:`PerformanceSketch.expected_performance`, from its expected confusion counts."""
    if task == "regression":
        return {}
    e = expected
    out = {"estimated_count": e["n"], "expected_accuracy": _ratio(e["confidence"], e["n"])}
    if task == "binary":
        tp, fp, fn = e["tp"], e["fp"], e["fn"]
        out["expected_precision"] = _ratio(tp, tp + fp)
        out["expected_recall"] = _ratio(tp, tp + fn)
        out["expected_f1"] = _f1(tp, fp, fn)
    return out
