"""The whole detection engine in one process: decode, route, fold, window, test, alert.

Replay drives it over files; the Kafka service runs the same pieces split in two stages (folding per
partition, testing per model), so a replay is a faithful backtest of the service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import Alert, RetrainingRequest, Severity, WindowInfo, retraining_requests
from stream_monitor.core.clock import Clock, SystemClock
from stream_monitor.core.errors import SnapshotError
from stream_monitor.core.events import Rejection, Stream, decode_batch
from stream_monitor.core.parsing import FeatureRows, route_by_model
from stream_monitor.core.typed_decoding import DecodedFeatures, TypedFeatureDecoder
from stream_monitor.core.window_stats import WindowStat
from stream_monitor.pipeline.detection import ModelMonitor
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.performance_monitor import PerformanceMonitor, has_performance
from stream_monitor.pipeline.windows import SliceFolder, WindowAssembler, slice_seconds_for
from stream_monitor.stats.profiles import ModelProfile


@dataclass
class ProcessResult:
    alerts: list[Alert] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # indices refer to the messages handed in

    @property
    def retraining(self) -> list[RetrainingRequest]:
        return retraining_requests(self.alerts)


class ModelPipeline:
    """Every stage for one model, in one process."""

    def __init__(self, layout: ModelLayout, clock: Clock | None = None) -> None:
        self.layout = layout
        w = layout.config.window
        self.slice_seconds = slice_seconds_for(
            w.max_events, w.max_seconds, layout.profile.events_per_second, w.slice_seconds
        )
        self.folder = ModelFolder(layout)
        self.slices = SliceFolder(self.slice_seconds, w.allowed_lateness_seconds)
        self.assembler = WindowAssembler(self.slice_seconds, w.max_events, w.max_seconds)
        self.monitor = ModelMonitor(layout, clock)
        self.performance = (
            PerformanceMonitor(
                layout, self.monitor.alpha_warning, self.monitor.alpha_critical, self.monitor.windows_per_day
            )
            if has_performance(layout)
            else None
        )
        self.accepted: Counter[str] = Counter()
        self.duplicates = 0
        self.performance_observations = 0  # judged performance windows and error-stream signals so far
        self.keep_stats = False  # record every test of every window (replay --stats-out)
        self.stats: list[WindowStat] = []

    def ingest(self, stream: Stream, events: Sequence[dict[str, Any]]) -> list[Rejection]:
        if stream is Stream.FEATURES:
            rows, rejected = self.folder.features.parse(events)
            self.ingest_feature_rows(rows)
        elif stream is Stream.PREDICTIONS:
            prows, rejected = self.folder.predictions.parse(events)
            keep = self.performance.add_predictions(prows) if self.performance is not None else None
            self.folder.fold_prediction_rows(self.slices, prows, keep)
            fresh = len(prows) if keep is None else int(keep.sum())
            self.accepted[stream.value] += fresh
            self.duplicates += len(prows) - fresh
        elif stream is Stream.LABELS:
            lrows, rejected = self.folder.parse_labels(events)
            if self.performance is not None:
                self.performance.add_labels(lrows)
            self.accepted[stream.value] += len(lrows)
        else:
            raise ValueError(f"stream {stream.value} is not handled by the drift pipeline")
        return rejected

    def ingest_feature_rows(self, rows: FeatureRows) -> None:
        """Parsed feature rows (by :meth:`ingest` or by the typed decoder) into the slices."""
        rows = self.folder.fold_feature_rows(self.slices, rows)
        if self.performance is not None:
            self.performance.add_features(rows)
        self.accepted[Stream.FEATURES.value] += len(rows)

    def snapshot(self) -> dict[str, Any]:
        """Everything a restarted process needs to continue exactly where this one stopped."""
        return {
            "v": 1,
            "layout": self.layout.sketch.fingerprint,
            "slices": self.slices.snapshot(),
            "assembler": self.assembler.snapshot(),
            "monitor": self.monitor.snapshot(),
            "performance": self.performance.snapshot() if self.performance is not None else None,
            "accepted": dict(self.accepted),
            "duplicates": self.duplicates,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("v") != 1 or state.get("layout") != self.layout.sketch.fingerprint:
            raise SnapshotError("pipeline snapshot is of another version or reference profile")
        self.slices.restore(state["slices"], self.layout.sketch)
        self.assembler.restore(state["assembler"], self.layout.sketch)
        self.monitor.restore(state["monitor"])
        if self.performance is not None and state.get("performance") is not None:
            self.performance.restore(state["performance"])
        self.accepted = Counter(state["accepted"])
        self.duplicates = int(state.get("duplicates", 0))

    def advance(self, final: bool = False) -> list[Alert]:
        alerts: list[Alert] = []
        windows = [w for closed in self.slices.drain(final=final) for w in self.assembler.add(closed)]
        windows += self.assembler.flush() if final else self.assembler.advance(self.slices.watermark)
        for window in windows:
            tested = self.monitor.windows_tested
            alerts.extend(self.monitor.test(window))
            if self.keep_stats and self.monitor.windows_tested > tested:
                self._record(window.info, self.monitor.last_observations, window.info.end_ts)
        if self.performance is not None:
            horizon = self.slices.max_ts if final else self.slices.watermark
            for judged in self.performance.evaluate(horizon, final=final):
                self.performance_observations += 1
                self.monitor.last_observations = [*self.monitor.last_observations, *judged.observations]
                event_ts = judged.window.end_ts if judged.event_ts is None else judged.event_ts
                if self.keep_stats:
                    self._record(judged.window, judged.observations, event_ts)
                alerts.extend(
                    self.monitor.lifecycle.observe(
                        judged.window, judged.observations, self.monitor.clock.now(), judged.event_ts
                    )
                )
        return alerts

    def _record(self, window: WindowInfo, observations: Sequence[Observation], event_ts: float) -> None:
        for o in observations:
            thresholds = o.details.get("thresholds")
            critical = (
                float(thresholds["critical"])
                if isinstance(thresholds, dict) and "critical" in thresholds
                else (o.threshold if o.level is Severity.CRITICAL else None)
            )
            self.stats.append(
                WindowStat.of(
                    self.layout.model_id,
                    window,
                    o.kind,
                    o.signal,
                    o.detector,
                    o.statistic,
                    o.warning_threshold,
                    critical,
                    o.p_value,
                    o.level,
                    event_ts,
                    o.details,
                )
            )

    def take_stats(self) -> list[WindowStat]:
        """The window statistics recorded since the last call (``keep_stats`` must be on)."""
        out, self.stats = self.stats, []
        return out


class Engine:
    """Routes raw messages of every configured model through its :class:`ModelPipeline`."""

    def __init__(
        self, config: MonitorConfig, profiles: Mapping[str, ModelProfile], clock: Clock | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.pipelines = {
            mid: ModelPipeline(ModelLayout.build(mid, mcfg, profiles[mid]), self.clock)
            for mid, mcfg in config.models.items()
        }
        # Feature messages decode straight into typed structs (see core/typed_decoding.py), as in the service.
        self._features = TypedFeatureDecoder.build(
            {m: p.folder.features for m, p in self.pipelines.items()},
            config.service.model_id_field,
            config.service.max_message_bytes,
        )
        self.rejected: Counter[tuple[str, str]] = Counter()  # (stream, reason)
        self.alerts_emitted: Counter[tuple[str, str, str]] = Counter()  # (kind, severity, status)

    def process(self, stream: Stream, messages: Sequence[bytes | None]) -> ProcessResult:
        if stream is Stream.FEATURES and self._features is not None:
            return self.process_decoded_features(self._features.decode(messages))
        events, positions, rejected = decode_batch(messages, self.config.service.max_message_bytes)
        result = self.process_events(stream, events, positions)
        result.rejections = sorted(rejected + result.rejections, key=lambda r: r.index)
        for r in rejected:
            self.rejected[(stream.value, r.reason.value)] += 1
        return result

    def decode_features(self, messages: Sequence[bytes | None]) -> DecodedFeatures | None:
        """Feature messages decoded as :meth:`process` decodes them, or None when the typed decoder does not
        serve this config (nested field paths): then :meth:`process_events` takes orjson-decoded events."""
        return None if self._features is None else self._features.decode(messages)

    def process_decoded_features(self, decoded: DecodedFeatures) -> ProcessResult:
        """Decoded feature messages (all of :meth:`decode_features`' output, or a prefix of it) in; alerts
        and the decoder's rejections out."""
        out = ProcessResult(rejections=list(decoded.rejections))
        for model_id, batch in decoded.batches.items():
            pipeline = self.pipelines[model_id]
            pipeline.ingest_feature_rows(batch.rows)
            out.alerts.extend(pipeline.advance())
        for r in decoded.rejections:
            self.rejected[(Stream.FEATURES.value, r.reason.value)] += 1
        self._count(out.alerts)
        return out

    def process_events(
        self, stream: Stream, events: Sequence[dict[str, Any]], positions: Sequence[int] | None = None
    ) -> ProcessResult:
        """Decoded events in; alerts and rejections (with positions from ``positions``) out."""
        pos = list(range(len(events))) if positions is None else list(positions)
        groups, rejected = route_by_model(events, self.config.service.model_id_field, self.pipelines)
        out = ProcessResult(rejections=[Rejection(pos[r.index], r.reason, r.detail) for r in rejected])
        for model_id, members in groups.items():
            batch = events if len(members) == len(events) else [events[i] for i in members]
            for r in self.pipelines[model_id].ingest(stream, batch):
                out.rejections.append(Rejection(pos[members[r.index]], r.reason, r.detail))
            out.alerts.extend(self.pipelines[model_id].advance())
        for r in rejected:
            self.rejected[(stream.value, r.reason.value)] += 1
        for r in out.rejections[len(rejected) :]:
            self.rejected[(stream.value, r.reason.value)] += 1
        self._count(out.alerts)
        return out

    def snapshot(self) -> bytes:
        """Versioned plain-data snapshot of every pipeline (JSON bytes, never pickle)."""
        import orjson

        return orjson.dumps({"v": 1, "models": {m: p.snapshot() for m, p in self.pipelines.items()}})

    def restore(self, data: bytes) -> None:
        import orjson

        raw = orjson.loads(data)
        if raw.get("v") != 1:
            raise SnapshotError(f"unsupported engine snapshot version {raw.get('v')!r}")
        for model_id, state in raw["models"].items():
            if model_id in self.pipelines:
                self.pipelines[model_id].restore(state)

    def flush(self) -> list[Alert]:
        """End of input: close every open slice and window and test them."""
        alerts = [a for p in self.pipelines.values() for a in p.advance(final=True)]
        self._count(alerts)
        return alerts

    def _count(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.alerts_emitted[(a.kind.value, a.severity.value, a.status.value)] += 1
