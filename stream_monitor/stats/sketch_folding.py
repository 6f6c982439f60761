"""Fold batches of rows into window sketches, vectorised: one pass over the batch, however many sketches.

Rows come grouped in consecutive segments (segment ``g`` starts at row ``starts[g]``) and segment ``g`` folds
into ``sketches[g]``: a batch that spans several time slices is binned and summed at once.
:meth:`WindowSketch.fold_numeric <stream_monitor.stats.sketches.WindowSketch.fold_numeric>` is the one-segment
case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.stats.sketch_layout import N_CAT_CODES, N_NUMERIC_CODES

if TYPE_CHECKING:
    from stream_monitor.stats.sketches import WindowSketch

_ONE_SEGMENT: Final = np.zeros(1, dtype=np.intp)


def fold_numeric_segments(
    sketches: Sequence[WindowSketch],
    starts: NDArray[np.intp],
    first: int,
    values: NDArray[np.float64],
    codes: NDArray[np.int8],
) -> NDArray[np.int8] | None:
    """Fold rows, grouped in consecutive segments (segment ``g`` starts at row ``starts[g]``), into
    ``sketches[g]``: the whole batch is binned and summed at once, whatever the number of segments. Returns
    each value's bin, (n, width), column-major (meaningless where ``codes`` is not 0), or None for no rows.

    ``values`` is NaN wherever ``codes`` is not 0. A batch with no missing value (the common case) skips the
    masking passes.
    """
    n, width = values.shape
    if n == 0 or width == 0:
        return None
    layout = sketches[0].layout
    g = len(starts)
    stop = first + width
    bins = layout.num_bins
    stride = width * (bins + 1)
    lengths = np.diff(np.append(starts, n))
    segment = np.repeat(np.arange(g, dtype=np.int64), lengths) if g > 1 else None
    # Column-major, each elementwise pass below runs down whole columns (a row-major batch of a few dozen
    # features makes numpy loop over rows as short as the feature count: about four times slower).
    values = np.asfortranarray(values)
    codes = np.asfortranarray(codes)
    all_valid = not codes.any()
    # bin = number of edges <= x (searchsorted side="right"), counted with one comparison per edge row,
    # which beats a per-column binary search on a few dozen edges.
    small = np.zeros((n, width), dtype=np.int8, order="F")
    for row in layout.edge_matrix[:, first:stop]:
        small += (values >= row).view(np.int8)
    slots = small.astype(np.int64)
    slots += np.arange(width, dtype=np.int64) * (bins + 1)
    if segment is not None:
        slots += (segment * stride)[:, None]
    if all_valid:
        cells = np.zeros((g, width, N_NUMERIC_CODES), dtype=np.int64)
        cells[:, :, 0] = lengths[:, None]
        d = values - layout.means[first:stop]
        mins = np.minimum.reduceat(values, starts, axis=0)
        maxs = np.maximum.reduceat(values, starts, axis=0)
    else:
        valid = codes == 0
        slots[~valid] = g * stride  # a dump slot past every segment
        cell = codes.astype(np.int64) + np.arange(width, dtype=np.int64) * N_NUMERIC_CODES
        if segment is not None:
            cell += (segment * width * N_NUMERIC_CODES)[:, None]
        cells = np.bincount(cell.ravel(order="K"), minlength=g * width * N_NUMERIC_CODES).reshape(
            g, width, N_NUMERIC_CODES
        )
        d = np.where(valid, values - layout.means[first:stop], 0.0)
        mins = np.fmin.reduceat(values, starts, axis=0)
        maxs = np.fmax.reduceat(values, starts, axis=0)
    hist = np.bincount(slots.ravel(order="K"), minlength=g * stride + 1)[: g * stride].reshape(
        g, width, bins + 1
    )
    scale = layout.scales[first:stop]
    sums = np.add.reduceat(d, starts, axis=0) / scale
    squares = np.add.reduceat(d * d, starts, axis=0) / (scale * scale)
    below = np.add.reduceat((values < layout.mins[first:stop]).view(np.int8), starts, axis=0, dtype=np.int64)
    above = np.add.reduceat((values > layout.maxs[first:stop]).view(np.int8), starts, axis=0, dtype=np.int64)
    for k, sk in enumerate(sketches):
        sk.num_hist[first:stop] += hist[k, :, :bins]
        sk.num_codes[first:stop] += cells[k]
        sk.num_sum[first:stop] += sums[k]
        sk.num_sumsq[first:stop] += squares[k]
        np.fmin(sk.num_min[first:stop], mins[k], out=sk.num_min[first:stop])
        np.fmax(sk.num_max[first:stop], maxs[k], out=sk.num_max[first:stop])
        sk.num_out[first:stop, 0] += below[k]
        sk.num_out[first:stop, 1] += above[k]
    return small


def fold_categorical_segments(
    sketches: Sequence[WindowSketch],
    starts: NDArray[np.intp],
    first: int,
    slots: NDArray[np.int32],
    new_values: Sequence[Sequence[tuple[int, Any]]] = (),
) -> None:
    """Categorical counterpart of :func:`fold_numeric_segments`; ``new_values`` holds (row, value) pairs."""
    n, width = slots.shape
    if n == 0 or width == 0:
        return
    g = len(starts)
    bins = sketches[0].layout.cat_bins
    stop = first + width
    segment = np.zeros(n, dtype=np.int64)
    if g > 1:
        segment[starts[1:]] = 1
        np.cumsum(segment, out=segment)
    s = slots.astype(np.int64)
    valid = s >= 0
    offsets = np.arange(width, dtype=np.int64)
    flat = np.where(valid, s + offsets * bins + (segment * width * bins)[:, None], g * width * bins)
    hist = np.bincount(flat.ravel(), minlength=g * width * bins + 1)[: g * width * bins].reshape(
        g, width, bins
    )
    code = np.where(valid, 0, -s) + offsets * N_CAT_CODES + (segment * width * N_CAT_CODES)[:, None]
    cells = np.bincount(code.ravel(), minlength=g * width * N_CAT_CODES).reshape(g, width, N_CAT_CODES)
    for k, sk in enumerate(sketches):
        sk.cat_hist[first:stop] += hist[k]
        sk.cat_codes[first:stop] += cells[k]
    for j, column in enumerate(new_values):
        if not column:
            continue
        rows = np.fromiter((r for r, _ in column), dtype=np.int64, count=len(column))
        owners = segment[rows]
        for k in np.unique(owners):
            sketches[int(k)].note_new_values(
                first + j, (column[int(i)][1] for i in np.flatnonzero(owners == k))
            )
