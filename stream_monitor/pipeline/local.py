"""The service's two halves joined in one process: the engine replay, the demo and the benchmarks drive.

Every stream has one :class:`~stream_monitor.pipeline.partition_fold.PartitionFolder` (the per-partition fold
the service runs for each input partition) and every model one
:class:`~stream_monitor.pipeline.model_merge.ModelMerger` (the per-model merge, windows and tests the service
runs behind its partials topic); here the folders' partials go straight to the mergers, sketches as objects.
So a replay is the service's backtest, exactly: the same decoding, slicing, lateness, join and tests, as if
each stream had one partition. Only the order differs from a service that reads them concurrently, and only
where the input is out of event-time order by more than the allowed lateness.

Streams the caller says will come (:meth:`Engine.expect`; replay names its files) are waited for from the
start, as the service waits for every partition; a stream nobody announced is *idle* until its first batch
(it promises nothing and nothing waits for it). At the end of the input, :meth:`Engine.flush` closes every
slice and window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import Alert, RetrainingRequest, retraining_requests
from stream_monitor.core.clock import Clock, SystemClock
from stream_monitor.core.errors import SnapshotError
from stream_monitor.core.events import Rejection, Stream
from stream_monitor.core.window_stats import WindowStat
from stream_monitor.pipeline.assembly import ServiceModels, build_models
from stream_monitor.pipeline.detection import ModelMonitor
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.model_merge import ModelMerger, TestedWindow
from stream_monitor.pipeline.partials import Partial, encode_partial
from stream_monitor.pipeline.partition_fold import Decoded, PartitionFolder, Stage1Result
from stream_monitor.pipeline.performance_monitor import PerformanceMonitor
from stream_monitor.pipeline.window_stat_records import window_stat_records
from stream_monitor.pipeline.windows import WindowAssembler
from stream_monitor.stats.profiles import ModelProfile

SNAPSHOT_VERSION: Final = 2
STREAMS: Final = (Stream.FEATURES, Stream.PREDICTIONS, Stream.LABELS)


@dataclass
class ProcessResult:
    alerts: list[Alert] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # indices refer to the messages handed in
    duplicates: int = 0  # messages repeating an event id still in an open slice: suppressed, not rejected

    @property
    def retraining(self) -> list[RetrainingRequest]:
        return retraining_requests(self.alerts)


class ModelPipeline:
    """One model's side of the engine: its merger (windows, monitor, performance) and what it counted."""

    def __init__(self, layout: ModelLayout, slice_seconds: float, merger: ModelMerger) -> None:
        self.layout = layout
        self.slice_seconds = slice_seconds
        self.merger = merger
        self.accepted: Counter[str] = Counter()  # events parsed and folded, per stream
        self.suppressed: Counter[str] = Counter()  # events repeating an id in an open slice, per stream
        self._open_events = 0  # events in the folders' open slices (see open_events)
        # Set by the engine after a batch: how to count them when next asked. Counting reads every open slice
        # (hundreds of them), so it waits for a reader (a gauge, a progress line) rather than every batch.
        self._recount: Callable[[], int] | None = None
        self.performance_observations = 0  # performance judgements so far
        self.keep_stats = False  # record every test of every window (replay --stats-out)
        self.stats: list[WindowStat] = []

    @property
    def open_events(self) -> int:
        """Events in the folders' open slices, as of the last batch the engine folded."""
        if self._recount is not None:
            self._open_events, self._recount = self._recount(), None
        return self._open_events

    @open_events.setter
    def open_events(self, n: int) -> None:
        self._open_events, self._recount = n, None

    def count_open_later(self, count: Callable[[], int]) -> None:
        """The folders changed: :attr:`open_events` is ``count()`` when next read."""
        self._recount = count

    @property
    def monitor(self) -> ModelMonitor:
        return self.merger.monitor

    @property
    def performance(self) -> PerformanceMonitor | None:
        return self.merger.performance

    @property
    def assembler(self) -> WindowAssembler:
        return self.merger.assembler

    def unwindowed_events(self) -> int:
        """Events folded but not in a window yet: in open slices, or in slices waiting for another stream."""
        pending = sum(sk.primary_events for parts in self.merger.pending.values() for sk in parts.values())
        return self.open_events + pending

    @property
    def duplicates(self) -> int:
        """Predictions the label join dropped as repeats of an event id (they count in no statistic)."""
        return self.merger.duplicate_predictions

    def take(self, tested: Iterable[TestedWindow]) -> list[Alert]:
        """The alerts of windows the merger closed; their statistics recorded when ``keep_stats``."""
        alerts: list[Alert] = []
        for t in tested:
            alerts.extend(t.alerts)
            if t.judged:
                self.performance_observations += 1
                # the monitor's latest observations (metrics read them) include the latest judgement's
                self.monitor.last_observations = [*self.monitor.last_observations, *t.observations]
            if self.keep_stats:
                self.stats.extend(window_stat_records(t))
        return alerts

    def take_stats(self) -> list[WindowStat]:
        """The window statistics recorded since the last call (``keep_stats`` must be on)."""
        out, self.stats = self.stats, []
        return out


class _Folds:
    """One fold (:class:`PartitionFolder`) per stream, fed raw or decoded messages; what becomes of the
    partials they hand out is the subclass's job."""

    def __init__(self, models: ServiceModels, shard: int, in_process: bool) -> None:
        self.config = models.config
        self.models = models
        self.folders = {s: models.partition_folder(s.value, shard, s, 0.0, in_process) for s in STREAMS}
        self._next_offset = dict.fromkeys(STREAMS, 0)  # offsets number each stream's messages
        # A stream is idle, for every model it holds no open slice of, from its first batch on (as a partition
        # with nothing of a model is idle in the service), so feeding features alone never waits for
        # predictions; :meth:`expect` makes the merge wait for the streams that will come from the start.
        self._awaited: set[Stream] = set()  # streams expected that have not had their first batch
        self.rejected: Counter[tuple[str, str]] = Counter()  # (stream, reason)

    def expect(self, streams: Iterable[Stream]) -> None:
        """Say, before the first batch, which streams will come (replay knows its files): each is waited for
        from the start, as a service waits for every partition, and the others are idle. Without it, a stream
        nobody has fed yet does not hold back the others, so the first batch of a stream fed after another's
        can be late (it is, exactly when the other ran ahead by more than the allowed lateness)."""
        self._awaited = set(streams)

    def process(self, stream: Stream, messages: Sequence[bytes | None]) -> ProcessResult:
        """Raw messages of one stream (as consumed from its topic) in; alerts and rejections out."""
        folder = self._folder(stream)
        return self._fold(stream, folder.process(self._offsets(stream, len(messages)), messages, 0.0))

    def decoder(self, stream: Stream) -> Callable[[Sequence[bytes | None]], Decoded] | None:
        """How :meth:`process` decodes a stream's messages when a typed decoder serves it (features and
        predictions, unless a field path is nested), for :meth:`process_decoded`; None: decode them into
        dicts for :meth:`process_events`."""
        folder = self.folders.get(stream)
        typed = None if folder is None else folder.features or folder.predictions
        return None if typed is None else typed.decode

    def process_decoded(self, stream: Stream, decoded: Decoded) -> ProcessResult:
        """Decoded messages (all of a :meth:`decoder`'s output, or a prefix of it) in; alerts and the
        decoder's rejections out."""
        folder = self.folders[stream]
        last = [r.index for r in decoded.rejections]
        last += [int(b.positions[-1]) for b in decoded.batches.values() if len(b.positions)]
        offsets = self._offsets(stream, max(last, default=-1) + 1)
        return self._fold(stream, folder.process_decoded(offsets, decoded, 0.0))

    def process_events(
        self, stream: Stream, events: Sequence[dict[str, Any]], positions: Sequence[int] | None = None
    ) -> ProcessResult:
        """Decoded events in; alerts and rejections (with positions from ``positions``) out."""
        folder = self._folder(stream)
        result = self._fold(stream, folder.process_events(self._offsets(stream, len(events)), events, 0.0))
        if positions is not None:
            pos = list(positions)
            result.rejections = [Rejection(pos[r.index], r.reason, r.detail) for r in result.rejections]
        return result

    def slice_lengths(self) -> list[float]:
        return [ms.slice_seconds for ms in self.models.slicing.values()]

    def horizons(self) -> dict[str, float]:
        """The latest event time each model has seen on any stream."""
        return {m: max(float(self.folders[s].slices[m].max_ts) for s in STREAMS) for m in self.models.slicing}

    def _finish_folds(self) -> list[Partial]:
        """End of input: every open slice handed out, then every stream idle."""
        out = [p for s in STREAMS for p in self.folders[s].finish()]
        return out + [p for s in STREAMS for p in self.folders[s].idle_partials(0.0, 0.0)]

    def _folder(self, stream: Stream) -> PartitionFolder:
        if stream not in self.folders:
            raise ValueError(f"stream {stream.value} is not handled by the drift pipeline")
        return self.folders[stream]

    def _offsets(self, stream: Stream, n: int) -> range:
        first = self._next_offset[stream]
        self._next_offset[stream] = first + n
        return range(first, first + n)

    def _fold(self, stream: Stream, stage1: Stage1Result) -> ProcessResult:
        """One batch folded: its rejections counted, its partials (and the idle notices of the streams that
        promise nothing now) delivered."""
        out = ProcessResult(
            rejections=sorted(stage1.rejections, key=lambda r: r.index),
            duplicates=sum(stage1.duplicates.values()),
        )
        for r in out.rejections:
            self.rejected[(stream.value, r.reason.value)] += 1
        partials = list(stage1.partials)
        self._awaited.discard(stream)
        for other in STREAMS:
            if other not in self._awaited:
                partials.extend(self.folders[other].idle_partials(0.0, 0.0))
        self._deliver(stream, stage1, partials, out)
        return out

    def _deliver(
        self, stream: Stream, stage1: Stage1Result, partials: list[Partial], out: ProcessResult
    ) -> None:
        raise NotImplementedError


class Engine(_Folds):
    """Every configured model's pipeline behind one fold per stream; raw or decoded messages in, alerts out.

    With ``shards`` > 1 the merge also expects the partials of folds run elsewhere (shard ``i`` of each stream
    is the source ``"<stream>:<i>"``; this engine's own folds are shard 0), handed in with :meth:`accept` and
    ended with :meth:`finish`: ``replay --workers`` folds file shards in worker processes that way.
    """

    def __init__(
        self,
        config: MonitorConfig,
        profiles: Mapping[str, ModelProfile],
        clock: Clock | None = None,
        shards: int = 1,
    ) -> None:
        self.clock = clock or SystemClock()
        super().__init__(build_models(config, profiles, self.clock), 0, in_process=True)
        make = self.models.merger_factory(
            [f"{s.value}:{i}" for s in (Stream.FEATURES, Stream.PREDICTIONS) for i in range(shards)],
            [f"{Stream.LABELS.value}:{i}" for i in range(shards)],
        )
        self.pipelines: dict[str, ModelPipeline] = {}
        for model_id in config.models:
            merger = make(model_id)
            assert merger is not None
            self.pipelines[model_id] = ModelPipeline(
                self.models.layouts[model_id], self.models.slicing[model_id].slice_seconds, merger
            )
        self.alerts_emitted: Counter[tuple[str, str, str]] = Counter()  # (kind, severity, status)

    def record_stats(self, on: bool) -> None:
        """Record every test of every window (replay --stats-out), for :meth:`take_stats`."""
        for p in self.pipelines.values():
            p.keep_stats = on

    def take_stats(self) -> list[WindowStat]:
        return [record for p in self.pipelines.values() for record in p.take_stats()]

    def accept(self, partials: Iterable[Partial]) -> list[Alert]:
        """Partials of folds run elsewhere (see the class docstring) in; alerts out."""
        alerts: list[Alert] = []
        for p in partials:
            pipeline = self.pipelines.get(p.model)
            if pipeline is not None:
                alerts.extend(pipeline.take(pipeline.merger.accept(p)))
        self._count(alerts)
        return alerts

    def finish(self, horizons: Mapping[str, float]) -> list[Alert]:
        """End of input for the merge: every pending slice and open window closed and tested, performance
        judged as of each model's latest event time (``horizons``)."""
        alerts: list[Alert] = []
        for model_id, pipeline in self.pipelines.items():
            alerts.extend(pipeline.take(pipeline.merger.finish(horizons.get(model_id, -math.inf))))
            pipeline.open_events = 0
        self._count(alerts)
        return alerts

    def flush(self) -> list[Alert]:
        """End of input: close every open slice and window and test them."""
        for pipeline in self.pipelines.values():  # counted before the folds hand their slices out
            pipeline.open_events = pipeline.open_events
        return self.accept(self._finish_folds()) + self.finish(self.horizons())

    def _deliver(
        self, stream: Stream, stage1: Stage1Result, partials: list[Partial], out: ProcessResult
    ) -> None:
        for model_id, n in stage1.accepted.items():
            self.pipelines[model_id].accepted[stream.value] += n
        for model_id, n in stage1.duplicates.items():
            self.pipelines[model_id].suppressed[stream.value] += n
        touched = set()
        for p in partials:
            pipeline = self.pipelines[p.model]
            out.alerts.extend(pipeline.take(pipeline.merger.accept(p)))
            touched.add(p.model)
        for model_id in touched | set(stage1.accepted):
            self.pipelines[model_id].count_open_later(partial(self._open_events, model_id))
        self._count(out.alerts)

    def _count(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.alerts_emitted[(a.kind.value, a.severity.value, a.status.value)] += 1

    # ---- state -----------------------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """Versioned plain-data snapshot of every fold and merge (JSON bytes, never pickle)."""
        import orjson

        return orjson.dumps(
            {
                "v": SNAPSHOT_VERSION,
                "folders": {s.value: f.snapshot() for s, f in self.folders.items()},
                "offsets": {s.value: n for s, n in self._next_offset.items()},
                "models": {
                    m: {
                        "merger": p.merger.snapshot(),
                        "accepted": dict(p.accepted),
                        "performance_observations": p.performance_observations,
                    }
                    for m, p in self.pipelines.items()
                },
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def restore(self, data: bytes) -> None:
        import orjson

        raw = orjson.loads(data)
        if raw.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported engine snapshot version {raw.get('v')!r}")
        for stream, state in raw["folders"].items():
            dropped = self.folders[Stream(stream)].restore(state, 0.0)
            if dropped:
                raise SnapshotError(f"engine snapshot of {', '.join(dropped)} fits another reference profile")
        self._next_offset = {Stream(s): int(n) for s, n in raw["offsets"].items()}
        for model_id, state in raw["models"].items():
            if model_id in self.pipelines:
                pipeline = self.pipelines[model_id]
                pipeline.merger.restore(state["merger"])
                pipeline.accepted = Counter(state["accepted"])
                pipeline.performance_observations = int(state["performance_observations"])
        for model_id, pipeline in self.pipelines.items():
            pipeline.open_events = self._open_events(model_id)

    def _open_events(self, model_id: str) -> int:
        return sum(
            sk.primary_events for s in STREAMS for sk in self.folders[s].slices[model_id].open.values()
        )


class ShardFolder(_Folds):
    """The fold half alone, for shard ``shard`` of every stream: what a ``replay --workers`` process runs.

    Its partials are encoded (the partials topic's format) and handed to ``send``, for an :class:`Engine`
    built with ``shards`` in another process; it raises no alert itself.
    """

    def __init__(self, models: ServiceModels, shard: int, send: Callable[[list[bytes]], None]) -> None:
        super().__init__(models, shard, in_process=False)
        self.send = send
        self.accepted: dict[str, Counter[str]] = {
            m: Counter() for m in models.slicing
        }  # model -> stream -> n

    def record_stats(self, on: bool) -> None:
        """Window statistics are the merge's (the other process's)."""

    def take_stats(self) -> list[WindowStat]:
        return []

    def flush(self) -> list[Alert]:
        self.send([encode_partial(p) for p in self._finish_folds()])
        return []

    def _deliver(
        self, stream: Stream, stage1: Stage1Result, partials: list[Partial], out: ProcessResult
    ) -> None:
        if partials:
            self.send([encode_partial(p) for p in partials])
