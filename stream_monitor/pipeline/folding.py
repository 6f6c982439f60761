"""Stage 1: parse a micro-batch of one model's events and fold it into time-slice sketches.

This is all a Kafka partition worker does per batch, and all a replay does per block: no statistics are tested
here, so it stays cheap and its output (slice sketches) merges across partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import Rejection
from stream_monitor.core.feature_parsing import FeatureParser
from stream_monitor.core.outcome_parsing import LabelParser, PredictionParser
from stream_monitor.core.rows import NULL, FeatureRows, LabelRows, PredictionRows
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.windows import SliceFolder
from stream_monitor.stats.correlation import pair_sums
from stream_monitor.stats.sketch_folding import fold_categorical_segments, fold_numeric_segments
from stream_monitor.stats.sketches import WindowSketch


class ModelFolder:
    """Parses and folds one model's events; the slice bookkeeping lives in the :class:`SliceFolder` passed in."""

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        cfg = layout.config
        self.features = FeatureParser(
            numeric=layout.numeric_features,
            categorical={n: layout.categories[n] for n in layout.categorical_features},
            paths=layout.paths,
            ts_format=cfg.timestamp_format,
            boolean=layout.boolean_features,
            ignored=layout.disabled_features,
        )
        self.predictions = PredictionParser(
            layout.classes, layout.paths, cfg.timestamp_format, layout.positive_class
        )
        self.labels = LabelParser(layout.classes, layout.paths, cfg.timestamp_format)
        self._n_num_features = len(layout.numeric_features)
        self._n_cat_features = len(layout.categorical_features)

    def new_sketch(self) -> WindowSketch:
        return WindowSketch(self.layout.sketch)

    # ---- features --------------------------------------------------------------------------------------------
    def fold_feature_rows(self, folder: SliceFolder, rows: FeatureRows) -> FeatureRows:
        """Fold parsed feature rows into their slices; returns them reordered by slice."""
        if len(rows):
            ids, _ = folder.assign(rows.ts)
            order, starts, slice_ids = folder.segments(ids)
            if order is not None:
                rows = rows.permute(order)
            sketches = [folder.sketch(s, self.new_sketch) for s in slice_ids]
            self.fold_features(sketches, starts, rows)
        return rows

    def fold_features(
        self, sketches: Sequence[WindowSketch], starts: NDArray[np.intp], rows: FeatureRows
    ) -> None:
        """Fold rows (sorted by slice; slice ``g`` starts at ``starts[g]``) into their slices' sketches."""
        ends = [*starts[1:].tolist(), len(rows)]
        for sk, lo, hi in zip(sketches, starts.tolist(), ends, strict=True):
            sk.count_events("features", rows.ts[lo:hi])
        bins = fold_numeric_segments(sketches, starts, 0, rows.numeric, rows.numeric_code)
        if self._n_cat_features:
            fold_categorical_segments(sketches, starts, 0, rows.categorical, rows.new_values)
        if rows.unknown_fields:
            for sk, lo, hi in zip(sketches, starts.tolist(), ends, strict=True):
                sk.note_unknown_fields(name for r, name in rows.unknown_fields if lo <= r < hi)
        corr = self.layout.correlation
        if corr is not None:
            z, valid = corr.standardise(rows.numeric, rows.numeric_code, bins)
            for sk, lo, hi in zip(sketches, starts.tolist(), ends, strict=True):
                sk.fold_pair_sums(pair_sums(z[lo:hi], valid[lo:hi]))

    # ---- predictions -----------------------------------------------------------------------------------------
    def fold_prediction_rows(
        self, folder: SliceFolder, rows: PredictionRows, keep: NDArray[np.bool_] | None = None
    ) -> None:
        """Fold parsed predictions (those flagged in ``keep``: duplicates are not new predictions) into slices."""
        ts, predicted, score = rows.ts, rows.predicted, rows.score
        if keep is not None and not keep.all():
            ts, predicted, score = ts[keep], predicted[keep], score[keep]
        if len(ts) == 0:
            return
        ids, _ = folder.assign(ts)
        order, starts, slice_ids = folder.segments(ids)
        if order is not None:
            ts, predicted, score = ts[order], predicted[order], score[order]
        sketches = [folder.sketch(s, self.new_sketch) for s in slice_ids]
        self.fold_predictions(sketches, starts, ts, predicted, score)

    def fold_predictions(
        self,
        sketches: Sequence[WindowSketch],
        starts: NDArray[np.intp],
        ts: NDArray[np.float64],
        predicted: NDArray[np.float64],
        score: NDArray[np.float64],
    ) -> None:
        layout = self.layout
        ends = [*starts[1:].tolist(), len(ts)]
        for sk, lo, hi in zip(sketches, starts.tolist(), ends, strict=True):
            sk.count_events("predictions", ts[lo:hi])
        if layout.score_index is not None:
            codes = np.where(np.isnan(score), np.int8(NULL), np.int8(0)).astype(np.int8)[:, None]
            fold_numeric_segments(sketches, starts, layout.score_index, score[:, None], codes)
        if layout.prediction_numeric_index is not None:
            fold_numeric_segments(
                sketches,
                starts,
                layout.prediction_numeric_index,
                predicted[:, None],
                np.zeros((len(ts), 1), np.int8),
            )
        if layout.prediction_categorical_index is not None:
            fold_categorical_segments(
                sketches, starts, layout.prediction_categorical_index, predicted.astype(np.int32)[:, None]
            )

    # ---- labels ----------------------------------------------------------------------------------------------
    def parse_labels(self, events: Sequence[dict[str, Any]]) -> tuple[LabelRows, list[Rejection]]:
        return self.labels.parse(events)
