"""Stage 1: fold one input partition's events into time-slice sketches, per model, and hand out closed slices.

A :class:`PartitionFolder` owns one (topic, partition) of an input stream. For each batch of raw messages it
decodes, routes by model, parses and folds (the same core code as replay: :class:`ModelFolder` into a
:class:`SliceFolder` per model), then turns every slice the partition's watermark has passed into a
:class:`~stream_monitor.service.messages.Partial` for stage 2. Rejected messages come back with their position
so the edge can dead-letter them.

Offsets: the folder remembers ``next_offset``, the first offset its state does not cover. A batch (or the head
of one) below it is skipped, so a replay after a crash or a rebalance folds nothing twice. Its snapshot is the
open slices, the watermark state and ``next_offset``: restoring it and seeking to ``next_offset`` resumes
exactly.

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
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import Rejection, Stream, decode_batch
from stream_monitor.core.parsing import route_by_model
from stream_monitor.errors import SnapshotError
from stream_monitor.monitoring.folding import ModelFolder
from stream_monitor.monitoring.windows import SliceFolder
from stream_monitor.service.messages import NO_BOUNDARY, Partial

SNAPSHOT_VERSION: Final = 2
# A partial message stays well under the partials topic's record limit however many slices close at once.
MAX_PARTIAL_BYTES: Final = 4 * 1024 * 1024
SLICED_STREAMS: Final = (Stream.FEATURES, Stream.PREDICTIONS)
UNROUTED: Final = "unrouted"  # the model label of messages rejected before their model was known


@dataclass(frozen=True)
class ModelSlicing:
    """How one model's events are cut into slices (the same figures :class:`ModelPipeline` uses)."""

    folder: ModelFolder
    slice_seconds: float
    allowed_lateness: float


@dataclass
class Stage1Result:
    """What one batch produced: partials, rejections (positions in the batch handed in), counts."""

    partials: list[Partial] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # model -> events folded
    rejected_by_model: dict[str, int] = field(default_factory=dict)  # model ("unrouted" if none) -> rejected
    event_ts: list[NDArray[np.float64]] = field(default_factory=list)  # accepted events' times, for latency
    skipped: int = 0  # messages below next_offset (already covered by the restored state)


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
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.source = f"{topic}:{partition}"
        self.stream = stream
        self.models = dict(models)
        self.model_id_field = model_id_field
        self.max_message_bytes = max_message_bytes
        self.sliced = stream in SLICED_STREAMS
        self.slices = {m: SliceFolder(s.slice_seconds, s.allowed_lateness) for m, s in self.models.items()}
        self.sent = dict.fromkeys(self.models, NO_BOUNDARY)  # boundary last told to stage 2
        self.idle = dict.fromkeys(self.models, False)  # idleness last told to stage 2
        self.last_event_at = dict.fromkeys(self.models, now)
        self.next_offset: int | None = None
        self.changed = False  # since the last snapshot

    # ---- processing ----------------------------------------------------------------------------------------
    def process(self, offsets: Sequence[int], values: Sequence[bytes | None], now: float) -> Stage1Result:
        """Fold one batch of this partition's messages (ascending offsets); never raises on bad input."""
        result = Stage1Result()
        skip = 0
        if self.next_offset is not None:
            while skip < len(offsets) and offsets[skip] < self.next_offset:
                skip += 1
        result.skipped = skip
        if skip == len(offsets):
            return result
        raw = values[skip:] if skip else values
        events, kept, rejected = decode_batch(raw, self.max_message_bytes)
        result.rejections.extend(Rejection(r.index + skip, r.reason, r.detail) for r in rejected)
        groups, unrouted = route_by_model(events, self.model_id_field, self.models)
        result.rejections.extend(Rejection(kept[r.index] + skip, r.reason, r.detail) for r in unrouted)
        if rejected or unrouted:
            result.rejected_by_model[UNROUTED] = len(rejected) + len(unrouted)
        for model_id, members in groups.items():
            batch = events if len(members) == len(events) else [events[i] for i in members]
            ts, refused = self._ingest(model_id, batch)
            result.rejections.extend(
                Rejection(kept[members[r.index]] + skip, r.reason, r.detail) for r in refused
            )
            if refused:
                result.rejected_by_model[model_id] = len(refused)
            if len(ts):
                result.accepted[model_id] = result.accepted.get(model_id, 0) + len(ts)
                result.event_ts.append(ts)
                self.last_event_at[model_id] = now
        first = offsets[skip]
        self.next_offset = offsets[-1] + 1
        self.changed = True
        if self.sliced:
            result.partials = self._drain((first, self.next_offset))
        return result

    def _ingest(
        self, model_id: str, events: Sequence[dict[str, Any]]
    ) -> tuple[NDArray[np.float64], list[Rejection]]:
        folder = self.models[model_id].folder
        if self.stream is Stream.FEATURES:
            rows, refused = folder.ingest_features(self.slices[model_id], events)
            return rows.ts, refused
        if self.stream is Stream.PREDICTIONS:
            prows, refused = folder.ingest_predictions(self.slices[model_id], events)
            return prows.ts, refused
        lrows, refused = folder.parse_labels(
            events
        )  # labels are joined elsewhere; here: validated and counted
        return lrows.ts, refused

    def _drain(self, offsets: tuple[int, int]) -> list[Partial]:
        out: list[Partial] = []
        for model_id, folder in self.slices.items():
            closed = folder.drain()
            boundary = folder.next_slice
            was_idle = self.idle[model_id]
            if not closed and boundary <= self.sent[model_id] and not (was_idle and self._busy(model_id)):
                continue
            self.idle[model_id] = False
            chunks = _chunks([(c.slice_id, c.sketch.to_bytes()) for c in closed], boundary)
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

    def _busy(self, model_id: str) -> bool:
        return bool(self.slices[model_id].open)

    def idle_partials(self, now: float, idle_seconds: float) -> list[Partial]:
        """Tell stage 2 which models this source has nothing pending for and no recent events of."""
        if not self.sliced:
            return []
        out = []
        for model_id, folder in self.slices.items():
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
        return {
            "v": SNAPSHOT_VERSION,
            "stage": 1,
            "source": self.source,
            "stream": self.stream.value,
            "next_offset": self.next_offset,
            "models": {
                m: {
                    "layout": self.models[m].folder.layout.sketch.fingerprint,
                    "slices": _folder_state(f),
                    "sent": self.sent[m],
                    "idle": self.idle[m],
                }
                for m, f in self.slices.items()
            },
        }

    def restore(self, state: Mapping[str, Any], now: float) -> list[str]:
        """Resume from :meth:`snapshot`; returns the models whose state was dropped (reference changed)."""
        if (
            state.get("v") != SNAPSHOT_VERSION
            or state.get("stage") != 1
            or state.get("source") != self.source
        ):
            raise SnapshotError(
                f"stage-1 snapshot of {state.get('source')!r} v{state.get('v')!r} does not fit {self.source}"
            )
        dropped = []
        for model_id, ms in state["models"].items():
            if (
                model_id not in self.models
                or ms["layout"] != self.models[model_id].folder.layout.sketch.fingerprint
            ):
                dropped.append(model_id)
                continue
            self.slices[model_id].restore(
                _folder_restorable(ms["slices"]), self.models[model_id].folder.layout.sketch
            )
            self.sent[model_id] = int(ms["sent"])
            self.idle[model_id] = bool(ms["idle"])
        self.next_offset = None if state["next_offset"] is None else int(state["next_offset"])
        self.last_event_at = dict.fromkeys(self.models, now)
        self.changed = False
        return dropped


def _folder_state(folder: SliceFolder) -> dict[str, Any]:
    """:meth:`SliceFolder.snapshot` (open sketches as hex of their binary form; the snapshot is compressed)."""
    return folder.snapshot()


def _folder_restorable(state: Mapping[str, Any]) -> dict[str, Any]:
    """The form :meth:`SliceFolder.restore` reads (the same as :func:`_folder_state` writes)."""
    return dict(state)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _chunks(slices: list[tuple[int, bytes]], boundary: int) -> list[tuple[list[tuple[int, bytes]], int]]:
    """Split closed slices into messages under :data:`MAX_PARTIAL_BYTES`; each message's boundary is the next
    message's first slice, the last one's the real boundary, so every message keeps the boundary promise."""
    if not slices:
        return [([], boundary)]
    groups: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for item in slices:
        if groups[-1] and size + len(item[1]) > MAX_PARTIAL_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item[1])
    bounds = [g[0][0] for g in groups[1:]] + [boundary]
    return list(zip(groups, bounds, strict=True))
