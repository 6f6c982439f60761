"""Concept drift: is the model getting worse? Joins, windows and the order of judgement, for one model.

Predictions are joined to their late labels by event id (:class:`~stream_monitor.pipeline.joiner.
PredictionLabelJoiner`); joined pairs wait for the watermark and are folded in arrival order
(:mod:`~stream_monitor.pipeline.joined_pairs`), so every runtime folds the same pairs in the same order. Each
pair goes

* through the error stream (:mod:`~stream_monitor.pipeline.error_stream`), a sequential detector that
  alerts on the label that proves the model wrong;
* into the performance window of its prediction's time (:mod:`~stream_monitor.pipeline.performance_windows`:
  closed at ``performance.window_labelled`` expected labels or ``bucket_seconds``), estimated from scores
  alone when it closes and judged from its labels once ``labels.min_coverage`` of them are in, or its
  freshness SLA passed (:mod:`~stream_monitor.pipeline.performance_judge` holds the tests);
* into the fixed ``bucket_seconds`` bucket of its prediction's time, whose label coverage and lag are checked
  once the freshness SLA has passed (``label_lag``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.alerts import WindowInfo
from stream_monitor.core.errors import SnapshotError
from stream_monitor.core.rows import FeatureRows, LabelRows, PredictionRows
from stream_monitor.pipeline.error_stream import ErrorStreamMonitor
from stream_monitor.pipeline.event_id_hash import hash_event_ids
from stream_monitor.pipeline.join_results import JoinedBatch
from stream_monitor.pipeline.joined_pairs import Pairs, PendingPairs
from stream_monitor.pipeline.joiner import PredictionLabelJoiner
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.performance_judge import (
    PerformanceBucket,
    PerformanceJudge,
)
from stream_monitor.pipeline.performance_windows import ClosedWindow, CountOrTimeWindows
from stream_monitor.pipeline.segments import SegmentLookup
from stream_monitor.pipeline.windows import slice_seconds_for
from stream_monitor.stats.performance import PerformanceSketch, Task

SNAPSHOT_VERSION: Final = 2


# Closed windows waiting for their labels; past this the oldest is judged with the labels it has.
_MAX_PENDING_WINDOWS: Final = 512
# Predicted classes travel through the joiner as floats; a segment code rides above them (exact in float64).
_SEGMENT_BASE: Final = 1 << 20


@dataclass(frozen=True)
class PerformanceObservation:
    window: WindowInfo
    observations: list[Observation] = field(default_factory=list)
    event_ts: float | None = None  # when it was detected, if not at the window's end (label-speed alerts)


def _predictions(b: PerformanceBucket) -> int:
    return b.sketch.prediction_count


def has_performance(layout: ModelLayout) -> bool:
    """Whether a model is monitored for concept drift: enabled, and its reference knows its predictions and
    their labels. Without reference labels there is no performance to compare with, so no prediction is held
    for a join (the model's memory does not grow with its prediction rate)."""
    profile = layout.profile
    return (
        layout.config.performance.enabled and profile.predictions is not None and profile.labels is not None
    )


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
    which there are ``windows_per_day``: each of the performance tests (the error stream, the windowed accuracy
    test, the estimate) spends that same daily share, the error stream over the reference's labels, the others
    over the performance windows the reference's rate closes in a day.
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
        classes = layout.classes
        self.task: Task = (
            "regression" if classes is None else ("binary" if len(classes) == 2 else "multiclass")
        )
        self.n_classes = 2 if classes is None else max(len(classes), 2)
        # Class slots (reference frequency order) -> the sketch's class index; for a binary model the positive
        # class (the score's class, layout.positive_class) is index 1.
        self._slot_to_class: NDArray[np.int64] | None = None
        if classes is not None:
            order = sorted(range(len(classes)), key=lambda k: (type(classes[k]).__name__, classes[k]))
            if layout.positive_class is not None:
                order.sort(key=lambda k: classes[k] is layout.positive_class)
            mapping = np.empty(len(classes) + 1, dtype=np.int64)
            mapping[order] = np.arange(len(classes))
            mapping[-1] = -1  # "other": a class the reference never saw
            self._slot_to_class = mapping
        perf = layout.profile.labels.performance if layout.profile.labels else {}
        reference_n = layout.profile.labels.joined if layout.profile.labels else 0
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
                reference_n,
                alpha_warning * per_label,
                alpha_critical * per_label,
            )
        # Label health per fixed bucket of prediction time, kept until the label TTL has passed; the
        # performance tests per window that closes on an expected labelled count or on time.
        self.buckets: dict[int, PerformanceBucket] = {}
        target = math.ceil(self.cfg.window_labelled / expected_label_share(layout))
        rate = layout.profile.events_per_second
        performance_windows_per_day = max(86400.0 / self.cfg.bucket_seconds, 86400.0 * rate / target)
        scale = min(1.0, windows_per_day / performance_windows_per_day)
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
        self.judge = PerformanceJudge(
            layout,
            self.task,
            alpha_warning * scale,
            alpha_critical * scale,
            self.segment_names,
            self._segment_categories,
        )

    # ---- input ---------------------------------------------------------------------------------------------
    def _classes(self, slots: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._slot_to_class is None:
            return slots
        return self._slot_to_class[slots.astype(np.int64)].astype(np.float64)

    def _new_bucket(self) -> PerformanceBucket:
        b = PerformanceBucket(PerformanceSketch(self.task, self.n_classes))
        if self.segments is not None:
            b.seg_labelled = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
            b.seg_errors = [np.zeros(r, dtype=np.int64) for r in self.segments.radices]
        return b

    def _bucket(self, bucket_id: int) -> PerformanceBucket:
        b = self.buckets.get(bucket_id)
        if b is None:
            b = self.buckets[bucket_id] = self._new_bucket()
        return b

    def _targets(self, ts: NDArray[np.float64]) -> Iterator[tuple[PerformanceBucket, NDArray[np.bool_]]]:
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
            estimate = self.judge.estimate(closed.bucket)
            if estimate:
                out.append(PerformanceObservation(self._info(closed), estimate))
        overflow = self.windows.overflow()
        for w in self.windows.pending():
            b = w.bucket
            coverage = b.coverage
            complete = final or w in overflow or self.watermark >= w.end_ts + sla
            if not (complete or coverage >= self.labels_cfg.min_coverage):
                continue
            if b.sketch.count >= self.cfg.min_labelled:
                out.append(
                    PerformanceObservation(
                        self._info(w),
                        [*self.judge.judge(b, coverage), *self.judge.segments(b)],
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
                out.append(
                    PerformanceObservation(
                        WindowInfo(end - width, end, b.sketch.prediction_count),
                        [self.judge.label_health(b, b.coverage, self.joiner.stats())],
                    )
                )
        # a bucket is kept until its label health was checked (SLA) and its predictions expired (TTL)
        keep = max(self.labels_cfg.ttl_seconds, self.labels_cfg.freshness_sla_seconds)
        horizon = self.watermark - keep - width
        for bucket_id in [k for k in self.buckets if (k + 1) * width < horizon]:
            del self.buckets[bucket_id]
        return out

    @staticmethod
    def _info(w: ClosedWindow[PerformanceBucket]) -> WindowInfo:
        return WindowInfo(w.start_ts, w.end_ts, w.bucket.sketch.prediction_count)

    def _coverage(self, window: WindowInfo) -> float:
        """Share of the predictions in the buckets a span of prediction time touches that are labelled."""
        first, last = self._bucket_ids(np.array([window.start_ts, window.end_ts]))
        touched = [b for k, b in self.buckets.items() if first <= k <= last]
        predictions = sum(b.sketch.prediction_count for b in touched)
        return sum(b.sketch.count for b in touched) / predictions if predictions else math.nan

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
            "windows": self.windows.snapshot(PerformanceBucket.to_dict),
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
        self.buckets = {int(k): PerformanceBucket.from_dict(v) for k, v in state["buckets"].items()}
        if "windows" in state:
            self.windows.restore(state["windows"], PerformanceBucket.from_dict)
