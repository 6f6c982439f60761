"""Concept drift: is the model getting worse? Before the labels arrive (an estimate) and after (measured).

Predictions are joined to their late labels by event id (:class:`~stream_monitor.monitoring.joiner.
PredictionLabelJoiner`). Performance belongs to the *prediction's* time: each fixed bucket of prediction time
(``performance.bucket_seconds``) keeps a :class:`~stream_monitor.stats.performance.PerformanceSketch` that keeps
growing as late labels arrive, until the label TTL has passed. A bucket is judged

* as soon as it closes, from its scores alone, for a binary classifier with calibrated scores: the expected
  accuracy (confidence-based performance estimation) against the reference accuracy, alerted with
  ``details.estimate = true``;
* once enough of its labels are in (``labels.min_coverage`` of its predictions, and at least
  ``performance.min_labelled``), or when the label freshness SLA has passed, from the labels: accuracy (or MAE)
  against the reference, with the estimate beside the realised figure and the label coverage in ``details``;
* for label health: a ``label_lag`` alert when coverage at the SLA, or the lag's p95, breaks the SLA.

A drop only counts when it is both larger than the configured margin (2% warning, 5% critical by default) and
statistically distinguishable given the labelled count and the reference's, at the model's false-alarm rate.
The error stream also feeds a River binary detector (DDM by default, tuned to stay quiet on stable streams),
in prediction-time order within each label batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
from stream_monitor.core.parsing import FeatureRows, LabelRows, PredictionRows
from stream_monitor.detectors.river_adapter import make_error_detector
from stream_monitor.errors import SnapshotError
from stream_monitor.monitoring.joiner import PredictionLabelJoiner, hash_event_ids
from stream_monitor.monitoring.lifecycle import Observation
from stream_monitor.monitoring.model_layout import ModelLayout
from stream_monitor.monitoring.segments import SegmentLookup
from stream_monitor.stats.performance import PerformanceSketch, Task

SNAPSHOT_VERSION: Final = 1
PERFORMANCE_SIGNAL: Final = "performance"
ESTIMATE_SIGNAL: Final = "estimated_performance"
LABELS_SIGNAL: Final = "labels"
# River's DDM defaults fire on stable streams (about half of them at a 10% error rate); these stayed quiet on
# 200 stable streams and still caught a change within ~320 predictions (see detectors/river_adapter.py).
_ERROR_DETECTOR_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "ddm": {"warm_start": 500, "warning_threshold": 3.0, "drift_threshold": 4.0},
}


@dataclass
class _Bucket:
    sketch: PerformanceSketch
    estimated: bool = False
    judged: bool = False
    lag_checked: bool = False
    error_alarm: bool = False
    unknown_labels: int = 0
    # per segment feature: labelled pairs and errors per value (reference categories, other, missing)
    seg_labelled: list[NDArray[np.int64]] = field(default_factory=list)
    seg_errors: list[NDArray[np.int64]] = field(default_factory=list)


# Predicted classes travel through the joiner as floats; a segment code rides above them (exact in float64).
_SEGMENT_BASE: Final = 1 << 20


@dataclass(frozen=True)
class PerformanceObservation:
    window: WindowInfo
    observations: list[Observation] = field(default_factory=list)


def has_performance(layout: ModelLayout) -> bool:
    """Whether a model is monitored for concept drift: enabled, and its reference knows its predictions."""
    return layout.config.performance.enabled and layout.profile.predictions is not None


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha)


class PerformanceMonitor:
    def __init__(self, layout: ModelLayout, alpha_warning: float, alpha_critical: float) -> None:
        self.layout = layout
        cfg = layout.config
        self.cfg = cfg.performance
        self.labels_cfg = cfg.labels
        self.alpha_warning = alpha_warning
        self.alpha_critical = alpha_critical
        classes = layout.classes
        self.task: Task = (
            "regression" if classes is None else ("binary" if len(classes) == 2 else "multiclass")
        )
        self.n_classes = 2 if classes is None else max(len(classes), 2)
        # Class slots (reference frequency order) -> the sketch's class index; for a binary model the positive
        # class (the score's class) is the larger of the two in natural order: 1, True, "yes" over 0, False, "no".
        self._slot_to_class: NDArray[np.int64] | None = None
        if classes is not None:
            order = sorted(range(len(classes)), key=lambda k: (type(classes[k]).__name__, classes[k]))
            mapping = np.empty(len(classes) + 1, dtype=np.int64)
            mapping[order] = np.arange(len(classes))
            mapping[-1] = -1  # "other": a class the reference never saw
            self._slot_to_class = mapping
        perf = layout.profile.labels.performance if layout.profile.labels else {}
        self.reference = perf
        self.reference_n = layout.profile.labels.joined if layout.profile.labels else 0
        self.joiner = PredictionLabelJoiner(
            ttl=self.labels_cfg.ttl_seconds,
            max_outstanding=self.labels_cfg.max_outstanding,
            stale_after=self.labels_cfg.freshness_sla_seconds,
        )
        name = self.cfg.error_stream_detector
        self._error_detector = (
            make_error_detector(name, **_ERROR_DETECTOR_PARAMS.get(name, {}))
            if name != "none" and classes is not None
            else None
        )
        self.buckets: dict[int, _Bucket] = {}
        self.watermark = -math.inf
        self.segment_names = list(cfg.segments)
        self._segment_categories = [layout.categories[n] for n in self.segment_names]
        self.segments = (
            SegmentLookup(
                [len(c) + 2 for c in self._segment_categories],  # categories, "other", missing
                self.cfg.segment_max_pending,
                self.cfg.segment_join_seconds,
            )
            if self.segment_names
            else None
        )

    # ---- input ---------------------------------------------------------------------------------------------
    def _classes(self, slots: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._slot_to_class is None:
            return slots
        return self._slot_to_class[slots.astype(np.int64)].astype(np.float64)

    def _bucket(self, bucket_id: int) -> _Bucket:
        b = self.buckets.get(bucket_id)
        if b is None:
            b = self.buckets[bucket_id] = _Bucket(PerformanceSketch(self.task, self.n_classes))
            if self.segments is not None:
                b.seg_labelled = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
                b.seg_errors = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
        return b

    def add_features(self, rows: FeatureRows) -> None:
        """Remember the segment values of feature events until their predictions arrive."""
        if self.segments is None or not len(rows):
            return
        self.add_segments(rows.event_ids, rows.ts, rows.categorical[:, list(self.layout.segment_columns)])

    def add_segments(
        self, event_ids: Sequence[str], ts: NDArray[np.float64], slots: NDArray[np.integer[Any]]
    ) -> None:
        """:meth:`add_features` from the segment columns alone (slots, or negative codes for missing): what
        the Kafka service forwards from stage 1."""
        if self.segments is None or not len(ts):
            return
        missing = np.array([len(c) + 1 for c in self._segment_categories], dtype=np.int64)
        codes = np.where(slots < 0, missing, slots.astype(np.int64))
        self.segments.add(hash_event_ids(event_ids), ts, codes)

    def _bucket_ids(self, ts: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.floor(ts / self.cfg.bucket_seconds).astype(np.int64)

    def add_predictions(self, rows: PredictionRows) -> NDArray[np.bool_]:
        """Join and count predictions; returns which rows are new (duplicates are not new predictions)."""
        if not len(rows):
            return np.ones(0, dtype=bool)
        predicted = self._classes(rows.predicted)
        carried = predicted
        if self.segments is not None:
            combined = self.segments.take(hash_event_ids(rows.event_ids))
            carried = np.where(predicted >= 0, predicted + _SEGMENT_BASE * (combined + 1), predicted)
        batch = self.joiner.add_predictions(rows.event_ids, rows.ts, carried, rows.score)
        keep = batch.accepted & (predicted >= 0)
        ids = self._bucket_ids(rows.ts[keep])
        for b in np.unique(ids):
            sel = ids == b
            self._bucket(int(b)).sketch.fold_predictions(predicted[keep][sel], rows.score[keep][sel])
        self._fold_pairs(batch.pred_ts, batch.predicted, batch.score, batch.label)
        return np.asarray(batch.accepted)

    def add_labels(self, rows: LabelRows) -> None:
        if not len(rows):
            return
        batch = self.joiner.add_labels(rows.event_ids, rows.ts, self._classes(rows.label))
        self._fold_pairs(batch.pred_ts, batch.predicted, batch.score, batch.label)

    def _fold_pairs(
        self,
        pred_ts: NDArray[np.float64],
        predicted: NDArray[np.float64],
        score: NDArray[np.float64],
        label: NDArray[np.float64],
    ) -> None:
        if len(pred_ts) == 0:
            return
        order = np.argsort(pred_ts, kind="stable")
        pred_ts, predicted, score, label = pred_ts[order], predicted[order], score[order], label[order]
        segment = None
        if self.segments is not None:
            packed = np.where(predicted >= 0, predicted, 0).astype(np.int64)
            segment = packed // _SEGMENT_BASE - 1
            predicted = np.where(predicted >= 0, packed % _SEGMENT_BASE, predicted).astype(np.float64)
        known = (label >= 0) & (predicted >= 0)
        ids = self._bucket_ids(pred_ts)
        for b in np.unique(ids):
            sel = ids == b
            bucket = self._bucket(int(b))
            ok = sel & known
            bucket.unknown_labels += int((sel & ~known).sum())
            if ok.any():
                bucket.sketch.fold(predicted[ok], score[ok], label[ok])
                if segment is not None and self.segments is not None:
                    seg_ok = ok & (segment >= 0)
                    wrong = (predicted[seg_ok] != label[seg_ok]).astype(np.int64)
                    for i, radix in enumerate(self.segments.radices):
                        values = self.segments.unpack(segment[seg_ok], i)
                        bucket.seg_labelled[i] += np.bincount(values, minlength=radix)
                        bucket.seg_errors[i] += np.bincount(values, weights=wrong, minlength=radix).astype(
                            np.int64
                        )
        if self._error_detector is not None:
            errors = (predicted[known] != label[known]).astype(np.float64)
            for hit in self._error_detector.update_many(errors):
                self._bucket(int(ids[known][hit])).error_alarm = True

    # ---- judgement -----------------------------------------------------------------------------------------
    def evaluate(self, watermark: float) -> list[PerformanceObservation]:
        """Judge every bucket that became ready by event time ``watermark``; forget those past the label TTL."""
        self.watermark = max(self.watermark, watermark)
        self.joiner.expire(self.watermark)
        out: list[PerformanceObservation] = []
        width = self.cfg.bucket_seconds
        sla = self.labels_cfg.freshness_sla_seconds
        for bucket_id in sorted(self.buckets):
            b = self.buckets[bucket_id]
            start, end = bucket_id * width, (bucket_id + 1) * width
            if self.watermark < end:
                break
            info = WindowInfo(start, end, b.sketch.prediction_count)
            obs: list[Observation] = []
            if not b.estimated:
                b.estimated = True
                obs.extend(self._estimate(b))
            coverage = b.sketch.count / b.sketch.prediction_count if b.sketch.prediction_count else 0.0
            sla_passed = self.watermark >= end + sla
            if (
                not b.judged
                and b.sketch.count >= self.cfg.min_labelled
                and (coverage >= self.labels_cfg.min_coverage or sla_passed)
            ):
                b.judged = True
                obs.extend(self._judge(b, coverage))
                obs.extend(self._segments_test(b))
            if sla_passed and not b.lag_checked:
                b.lag_checked = True
                obs.append(self._label_health(b, coverage))
            if obs:
                out.append(PerformanceObservation(info, obs))
        horizon = self.watermark - self.labels_cfg.ttl_seconds - width
        for bucket_id in [k for k in self.buckets if (k + 1) * width < horizon]:
            del self.buckets[bucket_id]
        return out

    def _drop_test(
        self, value: float, n: int, baseline: float, n_ref: int
    ) -> tuple[Severity | None, float, float]:
        """(level, drop, z) for a fall of an accuracy-like share from ``baseline``."""
        drop = baseline - value
        var = baseline * (1 - baseline)
        se = math.sqrt(max(var, 1e-6) * (1.0 / max(n, 1) + 1.0 / max(n_ref, 1)))
        z = drop / se
        level = None
        if drop >= self.cfg.accuracy_drop_critical and z > _z(self.alpha_critical):
            level = Severity.CRITICAL
        elif drop >= self.cfg.accuracy_drop_warning and z > _z(self.alpha_warning):
            level = Severity.WARNING
        return level, drop, z

    def _estimate(self, b: _Bucket) -> list[Observation]:
        baseline = self.reference.get("accuracy")
        if self.task != "binary" or not self.cfg.estimate_without_labels or baseline is None:
            return []
        expected = b.sketch.expected_performance()
        n = int(expected.get("estimated_count", 0))
        acc = expected.get("expected_accuracy", math.nan)
        if n < self.layout.config.window.min_events or not math.isfinite(acc):
            return []
        level, drop, z = self._drop_test(acc, n, baseline, self.reference_n)
        details = {
            "estimate": True,
            "method": "confidence-based (CBPE)",
            "expected": expected,
            "reference_accuracy": baseline,
            "drop": drop,
            "z": z,
            "predictions": n,
        }
        threshold = baseline - (
            self.cfg.accuracy_drop_critical if level is Severity.CRITICAL else self.cfg.accuracy_drop_warning
        )
        message = (
            f"estimated accuracy {acc:.1%} vs reference {baseline:.1%} "
            f"(from scores, before labels; {n} predictions)"
        )
        return [
            Observation(
                AlertKind.CONCEPT_DRIFT,
                ESTIMATE_SIGNAL,
                level,
                "cbpe",
                drop,
                self.cfg.accuracy_drop_critical
                if level is Severity.CRITICAL
                else self.cfg.accuracy_drop_warning,
                self.cfg.accuracy_drop_warning,
                None,
                {**details, "accuracy_floor": threshold},
                message,
            )
        ]

    def _judge(self, b: _Bucket, coverage: float) -> list[Observation]:
        metrics = b.sketch.metrics()
        n = b.sketch.count
        details: dict[str, Any] = {
            "metrics": metrics,
            "labelled": n,
            "predictions": b.sketch.prediction_count,
            "label_coverage": coverage,
            "reference": self.reference,
        }
        if self.task == "binary" and self.cfg.estimate_without_labels:
            details["estimated"] = b.sketch.expected_performance()
        if b.unknown_labels:
            details["labels_of_unknown_class"] = b.unknown_labels
        obs: list[Observation] = []
        if self.task == "regression":
            base = self.reference.get("mae")
            mae = metrics.get("mae", math.nan)
            if base is not None and base > 0 and math.isfinite(mae):
                rise = (mae - base) / base
                rmse = metrics.get("rmse", math.nan)
                sd = math.sqrt(max(rmse * rmse - mae * mae, 1e-12)) if math.isfinite(rmse) else base
                z = (mae - base) / (sd * math.sqrt(1.0 / n + 1.0 / max(self.reference_n, 1)))
                level = None
                if rise >= self.cfg.mae_increase_critical and z > _z(self.alpha_critical):
                    level = Severity.CRITICAL
                elif rise >= self.cfg.mae_increase_warning and z > _z(self.alpha_warning):
                    level = Severity.WARNING
                thr = (
                    self.cfg.mae_increase_critical
                    if level is Severity.CRITICAL
                    else self.cfg.mae_increase_warning
                )
                obs.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        PERFORMANCE_SIGNAL,
                        level,
                        "mae_increase",
                        rise,
                        thr,
                        self.cfg.mae_increase_warning,
                        None,
                        {**details, "z": z},
                        f"MAE {mae:.4g} vs reference {base:.4g} ({rise:+.1%}; {coverage:.0%} of labels in)",
                    )
                )
        else:
            base = self.reference.get("accuracy")
            acc = metrics.get("accuracy", math.nan)
            if base is not None and math.isfinite(acc):
                level, drop, z = self._drop_test(acc, n, base, self.reference_n)
                thr = (
                    self.cfg.accuracy_drop_critical
                    if level is Severity.CRITICAL
                    else self.cfg.accuracy_drop_warning
                )
                obs.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        PERFORMANCE_SIGNAL,
                        level,
                        "accuracy_drop",
                        drop,
                        thr,
                        self.cfg.accuracy_drop_warning,
                        None,
                        {**details, "z": z},
                        f"accuracy {acc:.1%} vs reference {base:.1%} "
                        f"({n} labelled, {coverage:.0%} of labels in)",
                    )
                )
        if self._error_detector is not None:
            name = self.cfg.error_stream_detector
            obs.append(
                Observation(
                    AlertKind.CONCEPT_DRIFT,
                    PERFORMANCE_SIGNAL,
                    Severity.WARNING if b.error_alarm else None,
                    name,
                    1.0 if b.error_alarm else 0.0,
                    1.0,
                    1.0,
                    None,
                    {"labelled": n, "label_coverage": coverage},
                    f"{name} saw the error rate change in this window of predictions",
                )
            )
        return obs

    def _segments_test(self, b: _Bucket) -> list[Observation]:
        """A segment whose error rate exceeds the rest's by more than it did in the reference (by the spread
        margins), with a two-proportion z-test Bonferroni-split over the segment's values."""
        if self.segments is None:
            return []
        out: list[Observation] = []
        ref_all = self.layout.profile.labels.segments if self.layout.profile.labels else {}
        min_n = self.cfg.segment_min_labelled
        warn, crit = self.cfg.segment_spread_warning, self.cfg.segment_spread_critical
        for i, name in enumerate(self.segment_names):
            labelled, errors = b.seg_labelled[i], b.seg_errors[i]
            total_n, total_e = int(labelled.sum()), int(errors.sum())
            cats = self._segment_categories[i]
            ref = ref_all.get(name, {})
            ref_n = np.asarray(ref.get("labelled", []), dtype=np.float64)
            ref_e = np.asarray(ref.get("errors", []), dtype=np.float64)
            values = [
                v for v in range(len(cats) + 1) if labelled[v] >= min_n and total_n - labelled[v] >= min_n
            ]
            for v in values:
                n_v, e_v = int(labelled[v]), int(errors[v])
                n_r, e_r = total_n - n_v, total_e - e_v
                rate_v, rate_r = e_v / n_v, e_r / n_r
                spread = rate_v - rate_r
                base = 0.0
                var = rate_v * (1 - rate_v) / n_v + rate_r * (1 - rate_r) / n_r
                if v < len(ref_n) and ref_n[v] >= 50 and ref_n.sum() - ref_n[v] >= 50:
                    rv, rr = ref_e[v] / ref_n[v], (ref_e.sum() - ref_e[v]) / (ref_n.sum() - ref_n[v])
                    base = rv - rr
                    var += rv * (1 - rv) / ref_n[v] + rr * (1 - rr) / (ref_n.sum() - ref_n[v])
                excess = spread - base
                z = excess / math.sqrt(max(var, 1e-12))
                k = max(len(values), 1)
                level = None
                if excess >= crit and z > _z(self.alpha_critical / k):
                    level = Severity.CRITICAL
                elif excess >= warn and z > _z(self.alpha_warning / k):
                    level = Severity.WARNING
                value = cats[v] if v < len(cats) else "(other)"
                signal = f"segment:{name}={value}"
                details = {
                    "segment": {"feature": name, "value": value},
                    "error_rate": rate_v,
                    "others_error_rate": rate_r,
                    "spread": spread,
                    "reference_spread": base,
                    "labelled": n_v,
                    "z": z,
                }
                message = (
                    f"{name}={value}: error rate {rate_v:.1%} vs {rate_r:.1%} for the other segments "
                    f"(reference gap {base:+.1%}; {n_v} labelled)"
                )
                out.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        signal,
                        level,
                        "segment_spread",
                        excess,
                        crit if level is Severity.CRITICAL else warn,
                        warn,
                        None,
                        details,
                        message,
                    )
                )
        return out

    def _label_health(self, b: _Bucket, coverage: float) -> Observation:
        stats = self.joiner.stats()
        sla = self.labels_cfg.freshness_sla_seconds
        late = math.isfinite(stats.lag_p95) and stats.lag_p95 > sla
        short = coverage < self.labels_cfg.min_coverage
        level = (
            Severity.WARNING
            if (late or short) and b.sketch.prediction_count >= self.cfg.min_labelled
            else None
        )
        details = {
            "label_coverage": coverage,
            "min_coverage": self.labels_cfg.min_coverage,
            "lag_p50_seconds": stats.lag_p50,
            "lag_p95_seconds": stats.lag_p95,
            "sla_seconds": sla,
            "stale_labels": stats.stale_labels,
            "outstanding": stats.outstanding,
        }
        message = (
            f"labels: {coverage:.0%} of predictions labelled within the {sla:.0f}s SLA "
            f"(need {self.labels_cfg.min_coverage:.0%}); lag p95 {stats.lag_p95:.0f}s"
        )
        shortfall = max(self.labels_cfg.min_coverage - coverage, 0.0)
        return Observation(
            AlertKind.LABEL_LAG,
            LABELS_SIGNAL,
            level,
            "label_coverage",
            shortfall,
            1e-9,
            1e-9,
            None,
            details,
            message,
        )

    # ---- state ---------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "joiner": orjson.loads(self.joiner.snapshot()),
            "watermark": None if not math.isfinite(self.watermark) else self.watermark,
            "detector": self._error_detector.snapshot() if self._error_detector is not None else None,
            "segments": self.segments.snapshot() if self.segments is not None else None,
            "buckets": {
                str(k): {
                    "sketch": b.sketch.to_dict(),
                    "estimated": b.estimated,
                    "judged": b.judged,
                    "lag": b.lag_checked,
                    "alarm": b.error_alarm,
                    "unknown": b.unknown_labels,
                    "seg_labelled": [a.tolist() for a in b.seg_labelled],
                    "seg_errors": [a.tolist() for a in b.seg_errors],
                }
                for k, b in self.buckets.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported performance snapshot version {state.get('v')!r}")
        self.joiner.restore(orjson.dumps(state["joiner"]))
        self.watermark = -math.inf if state["watermark"] is None else float(state["watermark"])
        if self._error_detector is not None and state["detector"] is not None:
            self._error_detector.restore(state["detector"])
        if self.segments is not None and state.get("segments") is not None:
            self.segments.restore(state["segments"])
        self.buckets = {
            int(k): _Bucket(
                PerformanceSketch.from_dict(v["sketch"]),
                v["estimated"],
                v["judged"],
                v["lag"],
                v["alarm"],
                v["unknown"],
                [np.asarray(a, dtype=np.int64) for a in v.get("seg_labelled", [])],
                [np.asarray(a, dtype=np.int64) for a in v.get("seg_errors", [])],
            )
            for k, v in state["buckets"].items()
        }
