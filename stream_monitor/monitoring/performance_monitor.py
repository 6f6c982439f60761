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
Between windows, every joined label feeds the error stream (:mod:`~stream_monitor.monitoring.error_stream`):
a sequential detector that alerts on the label that proves the model wrong, not at the end of a window.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
from stream_monitor.core.parsing import FeatureRows, LabelRows, PredictionRows
from stream_monitor.errors import SnapshotError
from stream_monitor.monitoring.error_stream import ErrorStreamMonitor
from stream_monitor.monitoring.joined_pairs import Pairs, PendingPairs
from stream_monitor.monitoring.joiner import JoinedBatch, PredictionLabelJoiner, hash_event_ids
from stream_monitor.monitoring.lifecycle import Observation
from stream_monitor.monitoring.model_layout import ModelLayout
from stream_monitor.monitoring.performance_windows import ClosedWindow, CountOrTimeWindows
from stream_monitor.monitoring.segments import SegmentLookup
from stream_monitor.monitoring.windows import slice_seconds_for
from stream_monitor.stats.performance import PerformanceSketch, Task

SNAPSHOT_VERSION: Final = 2
PERFORMANCE_SIGNAL: Final = "performance"
ESTIMATE_SIGNAL: Final = "estimated_performance"
LABELS_SIGNAL: Final = "labels"


@dataclass
class _Bucket:
    sketch: PerformanceSketch
    estimated: bool = False
    judged: bool = False
    lag_checked: bool = False
    unknown_labels: int = 0
    # per segment feature: labelled pairs and errors per value (reference categories, other, missing)
    seg_labelled: list[NDArray[np.int64]] = field(default_factory=list)
    seg_errors: list[NDArray[np.int64]] = field(default_factory=list)

    def __iadd__(self, other: _Bucket) -> _Bucket:
        self.sketch.merge(other.sketch)
        self.unknown_labels += other.unknown_labels
        for mine, theirs in zip(self.seg_labelled, other.seg_labelled, strict=True):
            mine += theirs
        for mine, theirs in zip(self.seg_errors, other.seg_errors, strict=True):
            mine += theirs
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "sketch": self.sketch.to_dict(),
            "estimated": self.estimated,
            "judged": self.judged,
            "lag": self.lag_checked,
            "unknown": self.unknown_labels,
            "seg_labelled": [a.tolist() for a in self.seg_labelled],
            "seg_errors": [a.tolist() for a in self.seg_errors],
        }

    @classmethod
    def from_dict(cls, v: dict[str, Any]) -> _Bucket:
        return cls(
            PerformanceSketch.from_dict(v["sketch"]),
            v["estimated"],
            v["judged"],
            v["lag"],
            v["unknown"],
            [np.asarray(a, dtype=np.int64) for a in v.get("seg_labelled", [])],
            [np.asarray(a, dtype=np.int64) for a in v.get("seg_errors", [])],
        )


# Closed windows waiting for their labels; past this the oldest is judged with the labels it has.
_MAX_PENDING_WINDOWS: Final = 512
# Predicted classes travel through the joiner as floats; a segment code rides above them (exact in float64).
_SEGMENT_BASE: Final = 1 << 20


@dataclass(frozen=True)
class PerformanceObservation:
    window: WindowInfo
    observations: list[Observation] = field(default_factory=list)
    event_ts: float | None = None  # when it was detected, if not at the window's end (label-speed alerts)


def _predictions(b: _Bucket) -> int:
    return b.sketch.prediction_count


def has_performance(layout: ModelLayout) -> bool:
    """Whether a model is monitored for concept drift: enabled, and its reference knows its predictions."""
    return layout.config.performance.enabled and layout.profile.predictions is not None


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha)


def expected_label_share(layout: ModelLayout) -> float:
    """The share of predictions the reference saw labelled (1 when it cannot tell), at least 5 %."""
    profile = layout.profile
    if profile.labels is None or profile.predictions is None or profile.predictions.events <= 0:
        return 1.0
    return min(max(profile.labels.joined / profile.predictions.events, 0.05), 1.0)


def labels_per_day(layout: ModelLayout) -> float:
    """The reference's label rate, per day of event time (one a second when it cannot tell)."""
    profile = layout.profile
    rate = profile.events_per_second
    if profile.labels is not None and profile.events > 0 and rate > 0:
        rate *= profile.labels.events / profile.events
    return 86400.0 * (rate if rate > 0 else 1.0)


class PerformanceMonitor:
    """Joins, windows and judges one model's performance.

    ``alpha_warning`` / ``alpha_critical`` are one test's false-alarm probability per window of drift, of
    which there are ``windows_per_day``: the error stream spends the same daily share over its labels.
    """

    def __init__(
        self,
        layout: ModelLayout,
        alpha_warning: float,
        alpha_critical: float,
        windows_per_day: float = 96.0,
    ) -> None:
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
        self.error_stream: ErrorStreamMonitor | None = None
        if name != "none" and classes is not None and "accuracy" in perf:
            per_label = windows_per_day / labels_per_day(layout)
            self.error_stream = ErrorStreamMonitor(
                name,
                1.0 - perf["accuracy"],
                self.reference_n,
                alpha_warning * per_label,
                alpha_critical * per_label,
            )
        # Label health per fixed bucket of prediction time, kept until the label TTL has passed; the
        # performance tests per window that closes on an expected labelled count or on time.
        self.buckets: dict[int, _Bucket] = {}
        target = math.ceil(self.cfg.window_labelled / expected_label_share(layout))
        self.windows = CountOrTimeWindows(
            self._new_bucket,
            slice_seconds_for(target, self.cfg.bucket_seconds, layout.profile.events_per_second),
            target,
            self.cfg.bucket_seconds,
            max_pending=_MAX_PENDING_WINDOWS,
        )
        self.watermark = -math.inf
        self.pending = PendingPairs()
        self.label_clock = -math.inf  # the latest arrival of a released pair
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

    def _new_bucket(self) -> _Bucket:
        b = _Bucket(PerformanceSketch(self.task, self.n_classes))
        if self.segments is not None:
            b.seg_labelled = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
            b.seg_errors = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
        return b

    def _bucket(self, bucket_id: int) -> _Bucket:
        b = self.buckets.get(bucket_id)
        if b is None:
            b = self.buckets[bucket_id] = self._new_bucket()
        return b

    def _targets(self, ts: NDArray[np.float64]) -> Iterator[tuple[_Bucket, NDArray[np.bool_]]]:
        """Where rows of prediction time ``ts`` fold: their label-health bucket and their window."""
        ids = self._bucket_ids(ts)
        for b in np.unique(ids):
            yield self._bucket(int(b)), ids == b
        slices = np.floor(ts / self.windows.slice_seconds).astype(np.int64)  # as windows.slice_of
        for k in np.unique(slices):
            yield self.windows.slot(int(k)), slices == k

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
        for bucket, sel in self._targets(rows.ts[keep]):
            bucket.sketch.fold_predictions(predicted[keep][sel], rows.score[keep][sel])
        self._hold(batch)
        return np.asarray(batch.accepted)

    def add_labels(self, rows: LabelRows) -> None:
        if not len(rows):
            return
        batch = self.joiner.add_labels(rows.event_ids, rows.ts, self._classes(rows.label))
        self._hold(batch)

    def _hold(self, batch: JoinedBatch) -> None:
        self.pending.add(
            np.maximum(batch.pred_ts, batch.label_ts),
            batch.pred_ts,
            batch.predicted,
            batch.score,
            batch.label,
        )

    def _fold_pairs(self, pairs: Pairs) -> list[PerformanceObservation]:
        """Released pairs into their buckets and windows and through the error stream."""
        if not len(pairs):
            return []
        pred_ts, predicted, score, label = pairs.pred_ts, pairs.predicted, pairs.score, pairs.label
        self.label_clock = max(self.label_clock, float(pairs.arrival[-1]))
        segment = None
        if self.segments is not None:
            packed = np.where(predicted >= 0, predicted, 0).astype(np.int64)
            segment = packed // _SEGMENT_BASE - 1
            predicted = np.where(predicted >= 0, packed % _SEGMENT_BASE, predicted).astype(np.float64)
        known = (label >= 0) & (predicted >= 0)
        for bucket, sel in self._targets(pred_ts):
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
        if self.error_stream is None:
            return []
        out = []
        for seen in self.error_stream.observe(
            pairs.arrival[known], pred_ts[known], (predicted[known] != label[known]).astype(np.float64)
        ):
            details = {**seen.observation.details, "label_coverage": self._coverage(seen.window)}
            obs = dataclasses.replace(seen.observation, details=details)
            out.append(PerformanceObservation(seen.window, [obs], seen.event_ts))
        return out

    # ---- judgement -----------------------------------------------------------------------------------------
    def evaluate(self, watermark: float, final: bool = False) -> list[PerformanceObservation]:
        """What the error stream signalled in labels that arrived before event time ``watermark``, then every
        bucket that became ready by then; forget those past the label TTL. ``final``: the input has ended."""
        self.watermark = max(self.watermark, watermark)
        self.joiner.expire(self.watermark)
        out = self._fold_pairs(self.pending.release(math.inf if final else self.watermark))
        sla = self.labels_cfg.freshness_sla_seconds
        for closed in self.windows.close(self.watermark, _predictions, final):
            estimate = self._estimate(closed.bucket)
            if estimate:
                out.append(PerformanceObservation(self._info(closed), estimate))
        overflow = self.windows.overflow()
        for w in self.windows.pending():
            b = w.bucket
            coverage = b.sketch.count / b.sketch.prediction_count if b.sketch.prediction_count else 0.0
            complete = final or w in overflow or self.watermark >= w.end_ts + sla
            if not (complete or coverage >= self.labels_cfg.min_coverage):
                continue
            if b.sketch.count >= self.cfg.min_labelled:
                out.append(
                    PerformanceObservation(
                        self._info(w),
                        [*self._judge(b, coverage), *self._segments_test(b)],
                        max(w.end_ts, self.label_clock),
                    )
                )
            if b.sketch.count >= self.cfg.min_labelled or complete:
                self.windows.pop(w)
        width = self.cfg.bucket_seconds
        for bucket_id in sorted(self.buckets):
            b = self.buckets[bucket_id]
            end = (bucket_id + 1) * width
            if self.watermark < end + sla:
                break
            if not b.lag_checked:
                b.lag_checked = True
                coverage = b.sketch.count / b.sketch.prediction_count if b.sketch.prediction_count else 0.0
                out.append(
                    PerformanceObservation(
                        WindowInfo(end - width, end, b.sketch.prediction_count),
                        [self._label_health(b, coverage)],
                    )
                )
        horizon = self.watermark - self.labels_cfg.ttl_seconds - width
        for bucket_id in [k for k in self.buckets if (k + 1) * width < horizon]:
            del self.buckets[bucket_id]
        return out

    @staticmethod
    def _info(w: ClosedWindow[_Bucket]) -> WindowInfo:
        return WindowInfo(w.start_ts, w.end_ts, w.bucket.sketch.prediction_count)

    def _coverage(self, window: WindowInfo) -> float:
        """Share of the predictions in the buckets a span of prediction time touches that are labelled."""
        first, last = self._bucket_ids(np.array([window.start_ts, window.end_ts]))
        touched = [b for k, b in self.buckets.items() if first <= k <= last]
        predictions = sum(b.sketch.prediction_count for b in touched)
        return sum(b.sketch.count for b in touched) / predictions if predictions else math.nan

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

    def _cbpe_baseline(self) -> float | None:
        """The reference's own estimate, which a window's estimate is compared with; ``None`` when the
        comparison says nothing about accuracy: not binary, or the reference's scores are so miscalibrated
        that its estimate misses its realised accuracy by more than the warning margin."""
        expected, realised = self.reference.get("expected_accuracy"), self.reference.get("accuracy")
        if self.task != "binary" or not self.cfg.estimate_without_labels:
            return None
        if expected is None or realised is None:
            return None
        return expected if abs(expected - realised) <= self.cfg.accuracy_drop_warning else None

    def _estimate(self, b: _Bucket) -> list[Observation]:
        baseline = self._cbpe_baseline()
        if baseline is None:
            return []
        expected = b.sketch.expected_performance()
        n = int(expected.get("estimated_count", 0))
        acc = expected.get("expected_accuracy", math.nan)
        if n < max(self.layout.config.window.min_events, self.cfg.min_labelled) or not math.isfinite(acc):
            return []
        b.estimated = True
        level, drop, z = self._drop_test(acc, n, baseline, self.reference_n)
        details = {
            "estimate": True,
            "method": "confidence-based (CBPE)",
            "expected": expected,
            "reference_estimate": baseline,
            "reference_accuracy": self.reference.get("accuracy"),
            "drop": drop,
            "z": z,
            "predictions": n,
        }
        threshold = baseline - (
            self.cfg.accuracy_drop_critical if level is Severity.CRITICAL else self.cfg.accuracy_drop_warning
        )
        message = (
            f"estimated accuracy {acc:.1%} vs {baseline:.1%} estimated on the reference "
            f"(an estimate from scores, before labels; {n} predictions)"
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
                if b.estimated and level is None:
                    obs.append(self._estimate_refuted(acc, n))
        return obs

    def _estimate_refuted(self, accuracy: float, labelled: int) -> Observation:
        """The labels caught up and show no drop: whatever the estimate said about this window is over."""
        warn = self.cfg.accuracy_drop_warning
        return Observation(
            AlertKind.CONCEPT_DRIFT,
            ESTIMATE_SIGNAL,
            None,
            "realised_accuracy",
            0.0,
            warn,
            warn,
            None,
            {"estimate": True, "realised_accuracy": accuracy, "labelled": labelled},
            f"realised accuracy {accuracy:.1%} over {labelled} labelled predictions: no drop",
            conclusive=True,
        )

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
            "pending": self.pending.snapshot(),
            "label_clock": None if not math.isfinite(self.label_clock) else self.label_clock,
            "error_stream": self.error_stream.snapshot() if self.error_stream is not None else None,
            "segments": self.segments.snapshot() if self.segments is not None else None,
            "buckets": {str(k): b.to_dict() for k, b in self.buckets.items()},
            "windows": self.windows.snapshot(_Bucket.to_dict),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("v") not in (1, SNAPSHOT_VERSION):  # v1: River's verdicts per bucket, no error stream
            raise SnapshotError(f"unsupported performance snapshot version {state.get('v')!r}")
        self.joiner.restore(orjson.dumps(state["joiner"]))
        self.watermark = -math.inf if state["watermark"] is None else float(state["watermark"])
        if "pending" in state:
            self.pending.restore(state["pending"])
        clock = state.get("label_clock")
        self.label_clock = -math.inf if clock is None else float(clock)
        if self.error_stream is not None and state.get("error_stream") is not None:
            self.error_stream.restore(state["error_stream"])
        if self.segments is not None and state.get("segments") is not None:
            self.segments.restore(state["segments"])
        self.buckets = {int(k): _Bucket.from_dict(v) for k, v in state["buckets"].items()}
        if "windows" in state:
            self.windows.restore(state["windows"], _Bucket.from_dict)
