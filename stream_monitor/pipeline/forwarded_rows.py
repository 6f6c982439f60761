"""Rows stage 1 forwards to stage 2 for concept drift, and their cut into messages of bounded size.

For a model monitored for concept drift (``ModelSlicing.forward``), stage 1 also forwards, with every batch,
the parsed rows stage 2's :class:`PerformanceMonitor` needs, as a
:class:`~stream_monitor.pipeline.partials.RowBatch` on a partial of its own (chunked under
:data:`MAX_ROWS_BYTES`), sent *before* the partial that moves the source's boundary past their slices:
predictions (event id, time, predicted slot, score), labels (event id, time, label slot) and, when the model
has segments, features (event id, time, segment slots). Each row carries its source offset and the slice this
folder assigned it to (the late rule of :meth:`SliceFolder.assign`), so stage 2 skips replayed rows exactly
and applies them in slice order. Such a model's predictions are *not* folded into slices here: stage 2 folds
them after the join has dropped duplicates, as replay does. Label partitions report boundaries and idleness
for such models as feature and prediction partitions do (from label event time).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import Rejection
from stream_monitor.pipeline.partials import RowBatch

MAX_ROWS_BYTES: Final = 512 * 1024  # forwarded rows per message: well under the broker's 1 MB default


def _accepted(offsets: NDArray[np.int64], refused: Sequence[Rejection]) -> NDArray[np.int64]:
    """The offsets of the events a parser kept (it keeps their order and drops the refused)."""
    if not refused:
        return offsets
    keep = np.ones(len(offsets), dtype=bool)
    keep[[r.index for r in refused]] = False
    return offsets[keep]


def _rows(
    event_ids: list[str],
    offsets: NDArray[np.int64],
    refused: Sequence[Rejection],
    slice_ids: NDArray[np.int64],
    ts: NDArray[np.float64],
    columns: Mapping[str, NDArray[Any]],
) -> RowBatch:
    return RowBatch(
        event_ids, {"offset": _accepted(offsets, refused), "slice": slice_ids, "ts": ts, **columns}
    )


def _row_chunks(rows: RowBatch) -> list[RowBatch]:
    """Split forwarded rows into messages of at most about :data:`MAX_ROWS_BYTES`."""
    if rows.nbytes() <= MAX_ROWS_BYTES:
        return [rows]
    fixed = sum(v.itemsize * (v.size // max(len(v), 1)) for v in rows.columns.values())
    size = np.cumsum(np.fromiter((len(e) + 3 + fixed for e in rows.event_ids), np.int64, len(rows)))
    cut = np.searchsorted(size, np.arange(MAX_ROWS_BYTES, int(size[-1]), MAX_ROWS_BYTES), side="right")
    bounds = [0, *np.unique(cut[(cut > 0) & (cut < len(rows))]).tolist(), len(rows)]
    return [rows.take(np.arange(lo, hi)) for lo, hi in itertools.pairwise(bounds)]
