"""Stage 2: merge the partials of every source of a model, assemble windows, test them, and dedupe alerts.

A :class:`ModelMerger` holds one model's stage-2 state. Each source (an input partition of the feature or
prediction topic) promises, with each partial, a *boundary*: every slice below it has been sent. A slice is
*complete* once every source that is not idle has passed it; complete slices go, in order, into the
:class:`WindowAssembler`, and every window it closes is tested by the :class:`ModelMonitor`. Until each
expected source has spoken once (a partial, or an idle notice), nothing completes: so a worker that starts
before another has restored its partitions cannot close a window early.

Exactness:

* A slice's contributions are kept per source and merged in source order when the slice completes, so the
  merged sketch does not depend on the order partials arrived in (one worker or many, before or after a
  rebalance).
* A partial slice below its source's boundary was merged already: it is a replay of a stage 1 that restarted
  from an older snapshot, and is skipped (counted in ``replayed_slices``).
* A slice below the completed boundary from a source that *was* idle is late: merged into the oldest pending
  slice and counted (``late_slices``), never dropped.

Concept drift (models with a :class:`PerformanceMonitor`): the model's label partitions are sources too, and
the rows stage 1 forwards (:class:`RowBatch`: predictions, labels, segment values) wait here, per slice and
per source, until their slice completes. Completing slice ``s`` then runs, in this order: ``evaluate(s *
slice_seconds)`` (what the watermark reached before the slice), the slice's rows source by source (feature
sources, then prediction, then label sources, each by name, each in offset order) into the monitor, the
predictions the join accepted folded into the slice's sketch (so duplicates count in neither drift nor
performance, as in replay), then the slice into the window assembler; after the last complete slice,
``evaluate(boundary * slice_seconds)``. The sequence of joins and evaluations is therefore a function of the
events and their slices alone, never of how partials interleaved on the topic, of batch sizes, or of how far
the boundary jumped at once (evaluations with nothing applied between them judge the same buckets the same
way). Rows below a source's applied offset are replays, skipped (``replayed_rows``); rows of a once-idle
source below the completed boundary go to the oldest pending slice (``late_rows``), as late slices do.

:class:`~stream_monitor.pipeline.merge_partition.MergePartition` holds the mergers of the models of one
partition of the partials topic, with the alert dedupe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from stream_monitor.core.alerts import Alert, WindowInfo
from stream_monitor.core.clock import Clock
from stream_monitor.core.errors import SnapshotError
from stream_monitor.core.events import Stream
from stream_monitor.core.rows import LabelRows, PredictionRows
from stream_monitor.pipeline.detection import ModelMonitor
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.partials import (
    NO_BOUNDARY,
    Partial,
    RowBatch,
    decode_rows,
    encode_rows,
)
from stream_monitor.pipeline.performance_monitor import PerformanceMonitor
from stream_monitor.pipeline.windows import ClosedSlice, WindowAssembler
from stream_monitor.stats.sketches import WindowSketch

_STREAM_ORDER: Final = {Stream.FEATURES.value: 0, Stream.PREDICTIONS.value: 1, Stream.LABELS.value: 2}


@dataclass
class SourceMark:
    boundary: int = NO_BOUNDARY
    idle: bool = False
    heard: bool = False


@dataclass
class TestedWindow:
    """One window stage 2 closed: what the monitor said about it, for alerts and metrics."""

    model: str
    info: WindowInfo
    tested: bool  # False when below min_events (summarised, not tested)
    alerts: list[Alert]
    observations: list[Observation]
    firing: dict[tuple[str, str], str]
    judged: bool = False  # a performance judgement (concept drift), not a drift window
    event_ts: float | None = None  # event time the observations speak for (a performance judgement's)


class ModelMerger:
    """Stage-2 state of one model: per-source boundaries, pending slices, the window assembler and monitor."""

    def __init__(
        self,
        layout: ModelLayout,
        slice_seconds: float,
        sources: Iterable[str],
        clock: Clock | None = None,
        performance: bool = False,
    ) -> None:
        w = layout.config.window
        self.layout = layout
        self.model_id = layout.model_id
        self.slice_seconds = slice_seconds
        self.assembler = WindowAssembler(slice_seconds, w.max_events, w.max_seconds)
        self.monitor = ModelMonitor(layout, clock)
        self.sources = {s: SourceMark() for s in sources}
        self.pending: dict[int, dict[str, WindowSketch]] = {}
        self.complete = NO_BOUNDARY
        self.late_slices = 0
        self.replayed_slices = 0
        self.performance = (
            PerformanceMonitor(
                layout, self.monitor.alpha_warning, self.monitor.alpha_critical, self.monitor.windows_per_day
            )
            if performance
            else None
        )
        self.folder = ModelFolder(layout)
        self.rows: dict[int, dict[str, list[RowBatch]]] = {}  # slice -> source -> forwarded rows
        self.rows_next: dict[str, int] = {}  # source -> first source offset whose rows are not here yet
        self.streams: dict[str, str] = {}  # source -> its stream
        self.late_rows = 0
        self.replayed_rows = 0
        self.duplicate_predictions = 0

    def accept(self, p: Partial) -> list[TestedWindow]:
        """Take one partial; return the windows that closed because of it (usually none)."""
        mark = self.sources.setdefault(p.source, SourceMark())
        if p.rows is not None and self.performance is not None:
            self._take_rows(p.source, p.stream, p.rows)
        for slice_id, data in p.slices:
            if slice_id < mark.boundary:
                self.replayed_slices += 1
                continue
            target = slice_id
            if slice_id < self.complete:
                target = self.complete
                self.late_slices += 1
            sketch = WindowSketch.from_bytes(data, self.layout.sketch) if isinstance(data, bytes) else data
            parts = self.pending.setdefault(target, {})
            if p.source in parts:
                parts[p.source].merge(sketch)
            else:
                parts[p.source] = sketch
        mark.boundary = max(mark.boundary, p.boundary)
        mark.idle = p.idle
        mark.heard = True
        return self._advance()

    def completable(self) -> int:
        """The boundary below which every slice is complete (``NO_BOUNDARY`` while a source is unheard)."""
        marks = list(self.sources.values())
        if not marks or not all(m.heard for m in marks):
            return NO_BOUNDARY
        active = [m.boundary for m in marks if not m.idle]
        # Every source idle: none holds an open slice, so everything sent so far is complete.
        return min(active) if active else max(m.boundary for m in marks)

    def _take_rows(self, source: str, stream: str, rows: RowBatch) -> None:
        self.streams[source] = stream
        offsets = rows.columns["offset"]
        fresh = offsets >= self.rows_next.get(source, NO_BOUNDARY)
        if not fresh.all():
            self.replayed_rows += int((~fresh).sum())
            rows = rows.take(fresh)
        if not len(rows):
            return
        self.rows_next[source] = int(rows.columns["offset"].max()) + 1
        slices = rows.columns["slice"]
        late = slices < self.complete
        if late.any():
            self.late_rows += int(late.sum())
            slices = np.where(late, self.complete, slices)
            rows.columns["slice"] = slices
        for slice_id in np.unique(slices).tolist():
            part = rows if len(rows) and (slices == slice_id).all() else rows.take(slices == slice_id)
            self.rows.setdefault(slice_id, {}).setdefault(source, []).append(part)

    def finish(self, horizon: float) -> list[TestedWindow]:
        """End of input (a replay's last line): every pending slice completes whatever a source promised, the
        open window closes and is tested, and performance is judged as of event time ``horizon``."""
        pending = [*self.pending, *self.rows]
        out = self._advance(max(pending) + 1) if pending else []
        out.extend(self._test(w.info, w) for w in self.assembler.flush())
        out.extend(self._evaluate(horizon, final=True))
        return out

    def _advance(self, boundary: int | None = None) -> list[TestedWindow]:
        boundary = self.completable() if boundary is None else boundary
        if boundary <= self.complete:
            return []
        closed = []
        judged: list[TestedWindow] = []
        for slice_id in sorted(
            {s for s in self.pending if s < boundary} | {s for s in self.rows if s < boundary}
        ):
            parts = self.pending.pop(slice_id, {})
            sketch: WindowSketch | None = None
            for source in sorted(parts):
                sketch = parts[source] if sketch is None else sketch.merge(parts[source])
            rows = self.rows.pop(slice_id, None)
            if rows:
                judged.extend(self._evaluate(slice_id * self.slice_seconds))
                sketch = self._apply_rows(rows, sketch)
            if sketch is not None:
                closed.extend(self.assembler.add(ClosedSlice(slice_id, sketch)))
        self.complete = boundary
        closed.extend(self.assembler.advance(boundary * self.slice_seconds))
        tested = [self._test(w.info, w) for w in closed]
        return [*judged, *tested, *self._evaluate(boundary * self.slice_seconds)]

    def _apply_rows(
        self, rows: dict[str, list[RowBatch]], sketch: WindowSketch | None
    ) -> WindowSketch | None:
        """One complete slice's forwarded rows into the performance monitor, in the canonical order; the
        predictions the join accepted are folded into the slice's sketch (created if the slice had none)."""
        perf = self.performance
        assert perf is not None
        for source in sorted(rows, key=lambda src: (_STREAM_ORDER.get(self.streams.get(src, ""), 3), src)):
            batch = RowBatch.concat(rows[source])
            c, stream = batch.columns, self.streams[source]
            if stream == Stream.FEATURES.value:
                perf.add_segments(batch.event_ids, c["ts"], c["segments"])
            elif stream == Stream.PREDICTIONS.value:
                keep = perf.add_predictions(
                    PredictionRows(c["ts"], batch.event_ids, c["predicted"], c["score"], [])
                )
                self.duplicate_predictions += int((~keep).sum())
                if keep.any():
                    if sketch is None:
                        sketch = self.folder.new_sketch()
                    self.folder.fold_predictions(
                        [sketch], np.zeros(1, np.intp), c["ts"][keep], c["predicted"][keep], c["score"][keep]
                    )
            elif stream == Stream.LABELS.value:
                perf.add_labels(LabelRows(c["ts"], batch.event_ids, c["label"], []))
        return sketch

    def _evaluate(self, watermark: float, final: bool = False) -> list[TestedWindow]:
        """Judge the performance buckets ``watermark`` made ready (all of them when ``final``), through the
        alert lifecycle."""
        if self.performance is None:
            return []
        out = []
        lifecycle = self.monitor.lifecycle
        for j in self.performance.evaluate(watermark, final=final):
            alerts = lifecycle.observe(j.window, j.observations, self.monitor.clock.now(), j.event_ts)
            event_ts = j.window.end_ts if j.event_ts is None else j.event_ts
            out.append(
                TestedWindow(
                    self.model_id,
                    j.window,
                    True,
                    alerts,
                    list(j.observations),
                    lifecycle.firing,
                    judged=True,
                    event_ts=event_ts,
                )
            )
        return out

    def _test(self, info: WindowInfo, window: Any) -> TestedWindow:
        before = self.monitor.windows_tested
        alerts = self.monitor.test(window)
        tested = self.monitor.windows_tested > before
        return TestedWindow(
            self.model_id,
            info,
            tested,
            alerts,
            list(self.monitor.last_observations) if tested else [],
            self.monitor.lifecycle.firing,
            event_ts=info.end_ts,
        )

    @property
    def window_fill(self) -> float:
        cur = self.assembler.current
        return 0.0 if cur is None else cur.primary_events / self.assembler.max_events

    # ---- snapshots -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "layout": self.layout.sketch.fingerprint,
            "sources": {s: [m.boundary, m.idle, m.heard] for s, m in self.sources.items()},
            "pending": {
                str(k): {s: sk.to_bytes().hex() for s, sk in parts.items()}
                for k, parts in self.pending.items()
            },
            "complete": self.complete,
            "assembler": self.assembler.snapshot(),
            "monitor": self.monitor.snapshot(),
            "late": self.late_slices,
            "replayed": self.replayed_slices,
            "performance": None if self.performance is None else self._performance_state(),
        }

    def _performance_state(self) -> dict[str, Any]:
        assert self.performance is not None
        return {
            "monitor": self.performance.snapshot(),
            "rows": {
                str(k): {src: encode_rows(RowBatch.concat(b)).hex() for src, b in parts.items()}
                for k, parts in self.rows.items()
            },
            "rows_next": self.rows_next,
            "streams": self.streams,
            "late_rows": self.late_rows,
            "replayed_rows": self.replayed_rows,
            "duplicate_predictions": self.duplicate_predictions,
        }

    def _restore_performance(self, state: Mapping[str, Any] | None) -> None:
        if self.performance is None or state is None:
            return
        self.performance.restore(state["monitor"])
        self.rows = {
            int(k): {src: [decode_rows(bytes.fromhex(h))] for src, h in parts.items()}
            for k, parts in state["rows"].items()
        }
        self.rows_next = {str(k): int(v) for k, v in state["rows_next"].items()}
        self.streams = {str(k): str(v) for k, v in state["streams"].items()}
        self.late_rows = int(state["late_rows"])
        self.replayed_rows = int(state["replayed_rows"])
        self.duplicate_predictions = int(state["duplicate_predictions"])

    def restore(self, state: Mapping[str, Any]) -> None:
        if state.get("layout") != self.layout.sketch.fingerprint:
            raise SnapshotError(
                f"stage-2 snapshot of {self.model_id} was taken with another reference profile"
            )
        for source, (boundary, idle, heard) in state["sources"].items():
            self.sources[source] = SourceMark(int(boundary), bool(idle), bool(heard))
        layout = self.layout.sketch
        self.pending = {
            int(k): {s: WindowSketch.from_bytes(bytes.fromhex(h), layout) for s, h in parts.items()}
            for k, parts in state["pending"].items()
        }
        self.complete = int(state["complete"])
        self.assembler.restore(state["assembler"], layout)
        self.monitor.restore(state["monitor"])
        self.late_slices = int(state["late"])
        self.replayed_slices = int(state["replayed"])
        self._restore_performance(state.get("performance"))
