"""One model's decoded events (dicts) of one stream on a partition fold: parsed, screened for event time,
folded into slices or forwarded to stage 2.

The partition fold (:mod:`~stream_monitor.pipeline.partition_fold`) routes a batch by model and hands each
model's events here; the typed feature path (structs) only shares :func:`forward_features`. Features and
predictions are screened (:func:`~stream_monitor.pipeline.event_time.screen_rows`: future and late events
refused, repeated ids suppressed); a concept-drift model's labels by their own rule
(:func:`~stream_monitor.pipeline.label_screen.screen_labels`: skewed ahead, or older than the join's TTL),
since a label's time is when it became known; the label join suppresses repeated labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import Rejection, Stream
from stream_monitor.core.rows import FeatureRows, PredictionRows
from stream_monitor.pipeline.event_time import Screened, event_rejections, screen_rows
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.forwarded_rows import _accepted, _rows
from stream_monitor.pipeline.label_screen import screen_labels
from stream_monitor.pipeline.partials import RowBatch
from stream_monitor.pipeline.windows import SliceFolder


@dataclass
class Ingested:
    """What became of one model's events: accepted times, the refused (by index of the events handed in),
    rows for stage 2 (concept-drift models), and how many repeats were suppressed."""

    ts: NDArray[np.float64]
    refused: list[Rejection]
    forwarded: RowBatch | None = None
    duplicates: int = 0


def forward_features(
    folder: ModelFolder, forward: bool, slices: SliceFolder, rows: FeatureRows, offsets: NDArray[np.int64]
) -> RowBatch | None:
    """The segment columns of a concept-drift model's feature rows, for stage 2's performance monitor."""
    columns = list(folder.layout.segment_columns)
    if not (forward and columns and len(rows)):
        return None
    return RowBatch(
        rows.event_ids,
        {
            "offset": offsets,
            "slice": np.maximum(slices.slice_ids(rows.ts), slices.next_slice),
            "ts": rows.ts,
            "segments": rows.categorical[:, columns].astype(np.int32),
        },
    )


def ingest_prediction_rows(
    folder: ModelFolder,
    forward: bool,
    slices: SliceFolder,
    prows: PredictionRows,
    offsets: NDArray[np.int64],
    wall: float | None,
) -> tuple[Screened, Ingested]:
    """Screen one model's parsed predictions (``offsets``: each row's source offset) and fold them, or, for a
    concept-drift model, forward them; the screen's verdicts come back by row (``refused`` is left empty)."""
    # a concept-drift model's predictions are deduplicated by stage 2's label join, not here
    screened = screen_rows(slices, prows.ts, prows.event_ids, wall, dedupe=not forward)
    if screened.keep is not None:
        prows, offsets = prows.take(screened.keep), offsets[screened.keep]
    if not forward:
        folder.fold_prediction_rows(slices, prows)
        return screened, Ingested(prows.ts, [], None, screened.duplicates)
    # folded by stage 2, after the join's dedupe
    ids, _ = slices.assign(prows.ts)
    cols = {"predicted": prows.predicted, "score": prows.score}
    return screened, Ingested(prows.ts, [], _rows(prows.event_ids, offsets, [], ids, prows.ts, cols))


def ingest_events(
    stream: Stream,
    folder: ModelFolder,
    forward: bool,
    slices: SliceFolder,
    events: Sequence[dict[str, Any]],
    offsets: NDArray[np.int64],
    wall: float | None,
) -> Ingested:
    """Parse, screen and fold (or forward) one model's events; ``offsets`` are their source offsets and
    ``wall`` the clock ``max_future_seconds`` counts from (None in a replay)."""
    if stream is Stream.FEATURES:  # only when typed decoding is off (a nested field path)
        rows, refused = folder.features.parse(events)
        screened = screen_rows(slices, rows.ts, rows.event_ids, wall)
        refused = [*refused, *event_rejections(screened, refused, len(events))]
        if screened.keep is not None:
            rows = rows.take(screened.keep)
        out = forward_features(folder, forward, slices, rows, _accepted(offsets, refused))
        folder.fold_feature_rows(slices, rows)
        return Ingested(rows.ts, refused, out, screened.duplicates)
    if stream is Stream.PREDICTIONS:
        prows, refused = folder.predictions.parse(events)
        screened, got = ingest_prediction_rows(
            folder, forward, slices, prows, _accepted(offsets, refused), wall
        )
        got.refused = [*refused, *event_rejections(screened, refused, len(events))]
        return got
    lrows, refused = folder.parse_labels(events)
    if not forward:
        return Ingested(lrows.ts, refused)
    screened = screen_labels(slices, lrows.ts, folder.layout.config.labels.ttl_seconds, wall)
    refused = [*refused, *event_rejections(screened, refused, len(events))]
    if screened.keep is not None:
        lrows = lrows.take(screened.keep)
    ids, _ = slices.assign(lrows.ts)
    return Ingested(
        lrows.ts, refused, _rows(lrows.event_ids, offsets, refused, ids, lrows.ts, {"label": lrows.label})
    )
