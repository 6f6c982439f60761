"""Stage 1: fold one input partition's events into time-slice sketches, per model, and hand out closed slices.

A :class:`PartitionFolder` owns one (topic, partition) of an input stream. For each batch of raw messages it
decodes, routes by model, parses, screens event time (:mod:`~stream_monitor.pipeline.event_time`: future and
late events rejected, repeated ids suppressed) and folds (the same core code as replay: :class:`ModelFolder`
into a :class:`SliceFolder` per model), then turns every slice the partition's watermark has passed into a
:class:`~stream_monitor.pipeline.partials.Partial` for stage 2. Rejected messages come back with their position
so the edge can dead-letter them. The folder stays one class because decoding, folding and handing out
share its per-model slice folders and the boundaries already sent; the rows it forwards
(:mod:`~stream_monitor.pipeline.forwarded_rows`), the cut of closed slices into messages
(:mod:`~stream_monitor.pipeline.partial_chunks`) and its snapshot format
(:mod:`~stream_monitor.pipeline.partition_snapshot`) live in sibling modules.

Offsets: the folder remembers ``next_offset``, the first offset its state does not cover. A batch (or the head
of one) below it is skipped, so a replay after a crash or a rebalance folds nothing twice. Its snapshot is the
open slices, the watermark state and ``next_offset``: restoring it and seeking to ``next_offset`` resumes
exactly.

Rows for concept drift: for a model monitored for concept drift (``ModelSlicing.forward``), stage 1 also
forwards, with every batch, the parsed rows stage 2's :class:`PerformanceMonitor` needs; ``forwarded_rows``
says which, and how they travel.

Idle sources: stage 2 completes a slice once every source has passed it, so a source that never sees a
model's events would hold that model's windows open forever. A source tells stage 2 it is *idle* for a model
once no event of the model has arrived for ``idle_seconds`` of wall-clock time and it holds no open slice of
the model; stage 2 then stops waiting for it until its next partial. Wall-clock idleness is the one
non-deterministic rule: a model whose events pause longer than ``idle_seconds`` on a partition, then resume
with older event times than the other partitions reached meanwhile, has those events merged as late. Set
``idle_seconds`` above the longest pause of a model's stream on any partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.envelope import route_by_model
from stream_monitor.core.events import Rejection, Stream, decode_batch
from stream_monitor.core.rows import PredictionRows
from stream_monitor.core.typed_decoding import DecodedFeatures, TypedFeatureDecoder
from stream_monitor.core.typed_outcomes import DecodedPredictions, TypedPredictionDecoder
from stream_monitor.pipeline.event_ingest import forward_features, ingest_events, ingest_prediction_rows
from stream_monitor.pipeline.event_time import Screened, screen_rows
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.forwarded_rows import _row_chunks
from stream_monitor.pipeline.partial_chunks import _chunks
from stream_monitor.pipeline.partials import NO_BOUNDARY, Partial, RowBatch
from stream_monitor.pipeline.partition_snapshot import restore_partition, snapshot_partition
from stream_monitor.pipeline.windows import SliceFolder
from stream_monitor.stats.sketches import WindowSketch

SLICED_STREAMS: Final = (Stream.FEATURES, Stream.PREDICTIONS)
UNROUTED: Final = "unrouted"  # the model label of messages rejected before their model was known
Decoded = DecodedFeatures | DecodedPredictions  # what a typed decoder makes of a batch


@dataclass(frozen=True)
class ModelSlicing:
    """How one model's events are cut into slices (derived in :mod:`stream_monitor.pipeline.assembly`)."""

    folder: ModelFolder
    slice_seconds: float
    allowed_lateness: float
    forward: bool = False  # monitored for concept drift: forward rows to stage 2's PerformanceMonitor
    max_future: float | None = None  # window.max_future_seconds


@dataclass
class Stage1Result:
    """What one batch produced: partials, rejections (positions in the batch handed in), counts."""

    partials: list[Partial] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # model -> events folded
    rejected_by_model: dict[str, int] = field(default_factory=dict)  # model ("unrouted" if none) -> rejected
    event_ts: list[NDArray[np.float64]] = field(default_factory=list)  # accepted events' times, for latency
    skipped: int = 0  # messages below next_offset (already covered by the restored state)
    slow_decoded: int = 0  # feature messages the typed decoder refused (decoded by the orjson path instead)
    forwarded: dict[str, RowBatch] = field(default_factory=dict)  # rows for stage 2, per model
    duplicates: dict[str, int] = field(default_factory=dict)  # model -> repeated event ids suppressed


class PartitionFolder:
    """Stage-1 state of one input partition: a :class:`SliceFolder` per model, plus offset bookkeeping."""

    def __init__(
        self,
        topic: str,
        partition: int,
        stream: Stream,
        models: Mapping[str, ModelSlicing],
        model_id_field: str = "model_id",
        max_message_bytes: int = 1_048_576,
        now: float = 0.0,
        in_process: bool = False,
    ) -> None:
        self.topic = topic
        # In-process (the local engine), partials go straight to the merger: sketches travel as objects, not
        # bytes, and nothing is cut to a record size.
        self.in_process = in_process
        self.partition = partition
        self.source = f"{topic}:{partition}"
        self.stream = stream
        self.models = dict(models)
        self.model_id_field = model_id_field
        self.max_message_bytes = max_message_bytes
        # the models this source reports boundaries (and rows) for: every model on the feature and prediction
        # topics, the concept-drift models on the label topic
        self.reporting = [m for m, ms in self.models.items() if stream in SLICED_STREAMS or ms.forward]
        self.sliced = bool(self.reporting)
        self.slices = {
            m: SliceFolder(s.slice_seconds, s.allowed_lateness, s.max_future) for m, s in self.models.items()
        }
        self.sent = dict.fromkeys(self.models, NO_BOUNDARY)  # boundary last told to stage 2
        self.idle = dict.fromkeys(self.models, False)  # idleness last told to stage 2
        self.last_event_at = dict.fromkeys(self.models, now)
        self.features = (
            TypedFeatureDecoder.build(
                {m: ms.folder.features for m, ms in self.models.items()}, model_id_field, max_message_bytes
            )
            if stream is Stream.FEATURES
            else None
        )
        self.predictions = (
            TypedPredictionDecoder.build(
                {m: ms.folder.predictions for m, ms in self.models.items()}, model_id_field, max_message_bytes
            )
            if stream is Stream.PREDICTIONS
            else None
        )
        self.next_offset: int | None = None
        self.changed = False  # since the last snapshot

    # ---- processing ----------------------------------------------------------------------------------------
    def process(
        self, offsets: Sequence[int], values: Sequence[bytes | None], now: float, wall: float | None = None
    ) -> Stage1Result:
        """Fold one batch of this partition's messages (ascending offsets); never raises on bad input. ``now``
        times idleness (any clock); ``wall`` is the wall-clock time ``max_future_seconds`` counts from (None
        in a replay: see :meth:`SliceFolder.future_reference`)."""
        result = Stage1Result()
        skip = 0
        if self.next_offset is not None:
            while skip < len(offsets) and offsets[skip] < self.next_offset:
                skip += 1
        result.skipped = skip
        if skip == len(offsets):
            return result
        raw = values[skip:] if skip else values
        at = np.asarray(offsets[skip:], dtype=np.int64)
        typed = self.features or self.predictions
        if typed is not None:
            self._fold_decoded(typed.decode(raw), at, result, now, skip, wall)
        else:
            events, kept, rejected = decode_batch(raw, self.max_message_bytes)
            result.rejections.extend(Rejection(r.index + skip, r.reason, r.detail) for r in rejected)
            if rejected:
                result.rejected_by_model[UNROUTED] = len(rejected)
            positions = [k + skip for k in kept]
            self._fold_events(events, at[np.asarray(kept, np.intp)], positions, result, now, wall)
        return self._close(result, offsets[skip], offsets[-1] + 1)

    def process_decoded(
        self, offsets: Sequence[int], decoded: Decoded, now: float, wall: float | None = None
    ) -> Stage1Result:
        """Messages decoded already (by :attr:`features` or :attr:`predictions`, as replay reads files);
        ``offsets`` are the messages' offsets, new ones (above everything this folder has seen)."""
        result = Stage1Result()
        if len(offsets):
            self._fold_decoded(decoded, np.asarray(offsets, dtype=np.int64), result, now, 0, wall)
            self._close(result, offsets[0], offsets[-1] + 1)
        return result

    def process_events(
        self, offsets: Sequence[int], events: Sequence[dict[str, Any]], now: float, wall: float | None = None
    ) -> Stage1Result:
        """Messages decoded into dicts already; rejections index ``events``, ``offsets`` are new ones."""
        result = Stage1Result()
        if len(offsets):
            at = np.asarray(offsets, dtype=np.int64)
            self._fold_events(events, at, range(len(events)), result, now, wall)
            self._close(result, offsets[0], offsets[-1] + 1)
        return result

    def _close(self, result: Stage1Result, first: int, end: int) -> Stage1Result:
        """After a batch of offsets ``first`` to ``end`` (exclusive): remember where it ended and hand out the
        slices its watermark passed."""
        self.next_offset = end
        self.changed = True
        if self.sliced:
            result.partials = self._drain((first, end), result.forwarded)
        return result

    def _fold_decoded(
        self,
        decoded: Decoded,
        offsets: NDArray[np.int64],
        result: Stage1Result,
        now: float,
        skip: int,
        wall: float | None,
    ) -> None:
        """Typed-decoded messages (the orjson path decoded what the structs refused) into the slices of their
        models; ``skip`` shifts rejection positions to the batch handed in."""
        if isinstance(decoded, DecodedFeatures):  # the metric counts atypical feature messages only
            result.slow_decoded = decoded.slow
        result.rejections.extend(Rejection(r.index + skip, r.reason, r.detail) for r in decoded.rejections)
        result.rejected_by_model.update(decoded.refused_by_model)
        unrouted = len(decoded.rejections) - sum(decoded.refused_by_model.values())
        if unrouted:
            result.rejected_by_model[UNROUTED] = unrouted
        for model_id, batch in decoded.batches.items():
            ms, slices = self.models[model_id], self.slices[model_id]
            if isinstance(batch.rows, PredictionRows):
                screened, got = ingest_prediction_rows(
                    ms.folder, ms.forward, slices, batch.rows, offsets[batch.positions], wall
                )
                self._refuse_screened(model_id, screened, batch.positions, skip, result)
                if got.forwarded is not None and len(got.forwarded):
                    result.forwarded[model_id] = got.forwarded
                self._accept(model_id, got.ts, result, now)
                continue
            rows, positions = batch.rows, batch.positions
            screened = screen_rows(slices, rows.ts, rows.event_ids, wall)
            self._refuse_screened(model_id, screened, positions, skip, result)
            if screened.keep is not None:
                rows, positions = rows.take(screened.keep), positions[screened.keep]
            forward = forward_features(ms.folder, ms.forward, slices, rows, offsets[positions])
            if forward is not None:
                result.forwarded[model_id] = forward
            ms.folder.fold_feature_rows(slices, rows)
            self._accept(model_id, rows.ts, result, now)

    @staticmethod
    def _refuse_screened(
        model_id: str, screened: Screened, positions: NDArray[np.intp], skip: int, result: Stage1Result
    ) -> None:
        """The event-time screen's rejections and repeats among one model's decoded rows."""
        if screened.rejected:
            result.rejections.extend(
                Rejection(int(positions[row]) + skip, reason, detail)
                for row, reason, detail in screened.rejected
            )
            result.rejected_by_model[model_id] = result.rejected_by_model.get(model_id, 0) + len(
                screened.rejected
            )
        _count_duplicates(model_id, screened.duplicates, result)

    def _fold_events(
        self,
        events: Sequence[dict[str, Any]],
        offsets: NDArray[np.int64],
        positions: Sequence[int],
        result: Stage1Result,
        now: float,
        wall: float | None,
    ) -> None:
        """Decoded events (their source offsets, and their positions in the batch handed in, for rejections):
        route by model, parse and fold per model."""
        groups, unrouted = route_by_model(events, self.model_id_field, self.models)
        result.rejections.extend(Rejection(positions[r.index], r.reason, r.detail) for r in unrouted)
        if unrouted:
            result.rejected_by_model[UNROUTED] = result.rejected_by_model.get(UNROUTED, 0) + len(unrouted)
        for model_id, members in groups.items():
            batch = events if len(members) == len(events) else [events[i] for i in members]
            at = offsets[np.asarray(members, np.intp)]
            ms = self.models[model_id]
            got = ingest_events(self.stream, ms.folder, ms.forward, self.slices[model_id], batch, at, wall)
            if got.forwarded is not None and len(got.forwarded):
                result.forwarded[model_id] = got.forwarded
            result.rejections.extend(
                Rejection(positions[members[r.index]], r.reason, r.detail) for r in got.refused
            )
            if got.refused:
                result.rejected_by_model[model_id] = len(got.refused)
            _count_duplicates(model_id, got.duplicates, result)
            self._accept(model_id, got.ts, result, now)

    def _accept(self, model_id: str, ts: NDArray[np.float64], result: Stage1Result, now: float) -> None:
        if len(ts):
            result.accepted[model_id] = result.accepted.get(model_id, 0) + len(ts)
            result.event_ts.append(ts)
            self.last_event_at[model_id] = now

    def _drain(
        self, offsets: tuple[int, int], forwarded: Mapping[str, RowBatch], final: bool = False
    ) -> list[Partial]:
        out: list[Partial] = []
        for model_id in self.reporting:
            folder = self.slices[model_id]
            rows = forwarded.get(model_id)
            if rows is not None:
                # rows first: stage 2 must hold them before the boundary passes their slices
                self.idle[model_id] = False
                for chunk in [rows] if self.in_process else _row_chunks(rows):
                    out.append(
                        Partial(
                            model_id,
                            self.source,
                            self.stream.value,
                            self.sent[model_id],
                            False,
                            offsets,
                            _finite(folder.watermark),
                            rows=chunk,
                        )
                    )
            closed = folder.drain(final=final)
            boundary = folder.next_slice
            was_idle = self.idle[model_id]
            if not closed and boundary <= self.sent[model_id] and not (was_idle and self._busy(model_id)):
                continue
            self.idle[model_id] = False
            chunks: list[tuple[list[tuple[int, bytes | WindowSketch]], int]] = (
                [([(c.slice_id, c.sketch) for c in closed], boundary)]
                if self.in_process
                else cast(Any, _chunks([(c.slice_id, c.sketch.to_bytes()) for c in closed], boundary))
            )
            for slices, chunk_boundary in chunks:
                out.append(
                    Partial(
                        model_id,
                        self.source,
                        self.stream.value,
                        chunk_boundary,
                        False,
                        offsets,
                        _finite(folder.watermark),
                        slices,
                    )
                )
            self.sent[model_id] = max(self.sent[model_id], boundary)
        return out

    def finish(self) -> list[Partial]:
        """End of input (a replay's last line): hand out every open slice, as if the watermark had passed it."""
        if not self.sliced:
            return []
        end = self.next_offset if self.next_offset is not None else 0
        return self._drain((end, end), {}, final=True)

    def _busy(self, model_id: str) -> bool:
        return bool(self.slices[model_id].open)

    def idle_partials(self, now: float, idle_seconds: float) -> list[Partial]:
        """Tell stage 2 which models this source has nothing pending for and no recent events of."""
        if not self.sliced:
            return []
        out = []
        for model_id in self.reporting:
            folder = self.slices[model_id]
            if self.idle[model_id] or folder.open or now - self.last_event_at[model_id] < idle_seconds:
                continue
            self.idle[model_id] = True
            self.changed = True
            nxt = self.next_offset if self.next_offset is not None else 0
            out.append(
                Partial(
                    model_id,
                    self.source,
                    self.stream.value,
                    folder.next_slice,
                    True,
                    (nxt, nxt),
                    _finite(folder.watermark),
                )
            )
        return out

    def open_events(self) -> int:
        """Events held in open slices (for the window-fill gauge and tests)."""
        return sum(sk.total_events for f in self.slices.values() for sk in f.open.values())

    # ---- snapshots -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Versioned plain data: open slices, watermark state, what was sent, and ``next_offset``."""
        return snapshot_partition(self)

    def restore(self, state: Mapping[str, Any], now: float) -> list[str]:
        """Resume from :meth:`snapshot`; returns the models whose state was dropped (reference changed)."""
        return restore_partition(self, state, now)


def _count_duplicates(model_id: str, n: int, result: Stage1Result) -> None:
    if n:
        result.duplicates[model_id] = result.duplicates.get(model_id, 0) + n


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
