"""Mergeable window sketches: everything the detectors need from a window, in fixed-size numpy arrays.

A :class:`WindowSketch` holds, per numeric signal, a histogram on the reference edges, counts by cell code
(ok / null / absent / wrong type / infinite) and standardised moments; per categorical signal, counts on the
reference categories plus "other" and a bounded tally of unseen values; and the window's event counts and time
range. Its size depends on models x signals x bins, never on how many events it has seen.

Sketches of the same layout merge by addition, so per-partition partials of a window merge into exactly the
sketch of the whole window, in any order (property-tested in ``tests/unit/test_sketches.py``).

>>> from stream_monitor.stats.profiles import NumericProfile
>>> prof = NumericProfile(count=4, nulls=0, edges=np.array([0.0]), counts=np.array([2, 2]),
...                       mean=0.0, std=1.0, min=-1.0, max=1.0)
>>> layout = SketchLayout(numeric=[NumericSignal("x", "feature", prof)], categorical=[])
>>> a, b = WindowSketch(layout), WindowSketch(layout)
>>> a.fold_numeric(0, np.array([[-1.0], [0.5]]), np.zeros((2, 1), dtype=np.int8))
>>> b.fold_numeric(0, np.array([[2.0]]), np.zeros((1, 1), dtype=np.int8))
>>> a.merge(b).num_hist[0].tolist()
[1, 2]
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.errors import SnapshotError
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

SignalRole = Literal["feature", "prediction", "score"]
STREAMS: Final = ("features", "predictions", "labels")
N_NUMERIC_CODES: Final = 5  # ok, null, absent, wrong_type, infinite (see core.rows)
N_CAT_CODES: Final = 4  # ok, null, absent, wrong_type
MAX_TRACKED_VALUES: Final = 16  # unseen categories / unknown fields remembered per window, for alert details
SNAPSHOT_VERSION: Final = 2  # 2: binary arrays after a JSON header
_MAGIC: Final = b"SMK2"
_HEADER_LEN: Final = struct.Struct("<I")


@dataclass(frozen=True)
class NumericSignal:
    name: str
    role: SignalRole
    profile: NumericProfile


@dataclass(frozen=True)
class CategoricalSignal:
    name: str
    role: SignalRole
    profile: CategoricalProfile


class SketchLayout:
    """The fixed shape of every sketch of one model: which signals, in which order, on which bins."""

    def __init__(
        self,
        numeric: Sequence[NumericSignal],
        categorical: Sequence[CategoricalSignal],
        multivariate_width: int = 0,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.num_bins = max((s.profile.n_bins for s in self.numeric), default=1)
        self.cat_bins = max((s.profile.n_bins for s in self.categorical), default=1)
        self.means = np.array([s.profile.mean for s in self.numeric], dtype=np.float64)
        self.scales = np.array([s.profile.std if s.profile.std > 0 else 1.0 for s in self.numeric])
        self.edges = [s.profile.edges for s in self.numeric]
        # Edges as a (max edges, signals) matrix padded with +inf, for branch-free binning of a whole block.
        self.edge_matrix = np.full((max((len(e) for e in self.edges), default=0), len(self.numeric)), np.inf)
        for j, e in enumerate(self.edges):
            self.edge_matrix[: len(e), j] = e
        self.mins = np.array([s.profile.min for s in self.numeric], dtype=np.float64)
        self.maxs = np.array([s.profile.max for s in self.numeric], dtype=np.float64)
        self.multivariate_width = multivariate_width
        self.numeric_index = {s.name: i for i, s in enumerate(self.numeric)}
        self.categorical_index = {s.name: i for i, s in enumerate(self.categorical)}
        digest = hashlib.sha256()
        for s in self.numeric:
            digest.update(f"n:{s.name}:{s.role}:".encode() + s.profile.edges.tobytes())
        for c in self.categorical:
            digest.update(f"c:{c.name}:{c.role}:{list(c.profile.categories)!r}".encode())
        digest.update(f"mv:{multivariate_width}".encode())
        self.fingerprint = digest.hexdigest()[:16]


def _bounded_merge(
    into: dict[str, int], items: Iterable[tuple[str, int]], cap: int = MAX_TRACKED_VALUES
) -> None:
    for key, count in items:
        into[key] = into.get(key, 0) + count
    if len(into) > cap:
        keep = sorted(into.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]
        into.clear()
        into.update(keep)


class WindowSketch:
    """Fixed-size, mergeable summary of one window (or a slice of one) for one model."""

    __slots__ = (
        "cat_codes",
        "cat_hist",
        "events",
        "late",
        "layout",
        "mv_sums",
        "new_values",
        "num_codes",
        "num_hist",
        "num_max",
        "num_min",
        "num_out",
        "num_sum",
        "num_sumsq",
        "ts_max",
        "ts_min",
        "unknown_fields",
    )

    def __init__(self, layout: SketchLayout) -> None:
        self.layout = layout
        n_num, n_cat = len(layout.numeric), len(layout.categorical)
        self.num_hist = np.zeros((n_num, layout.num_bins), dtype=np.int64)
        self.num_codes = np.zeros((n_num, N_NUMERIC_CODES), dtype=np.int64)
        self.num_sum = np.zeros(n_num)
        self.num_sumsq = np.zeros(n_num)
        self.num_min = np.full(n_num, np.inf)
        self.num_max = np.full(n_num, -np.inf)
        self.num_out = np.zeros((n_num, 2), dtype=np.int64)  # values below the reference min / above its max
        width = layout.multivariate_width
        self.mv_sums = np.zeros((4, width, width))  # pairwise sums for correlations (stats.correlation)
        self.cat_hist = np.zeros((n_cat, layout.cat_bins), dtype=np.int64)
        self.cat_codes = np.zeros((n_cat, N_CAT_CODES), dtype=np.int64)
        self.new_values: list[dict[str, int]] = [{} for _ in range(n_cat)]
        self.unknown_fields: dict[str, int] = {}
        self.events = np.zeros(len(STREAMS), dtype=np.int64)
        self.late = 0
        self.ts_min = np.inf
        self.ts_max = -np.inf

    # ---- folding -------------------------------------------------------------------------------------------
    def fold_numeric(self, first: int, values: NDArray[np.float64], codes: NDArray[np.int8]) -> None:
        """Fold a (rows x signals) block into numeric signals ``first .. first + signals - 1``."""
        fold_numeric_segments([self], _ONE_SEGMENT, first, values, codes)

    def fold_categorical(
        self, first: int, slots: NDArray[np.int32], new_values: Sequence[Sequence[tuple[int, Any]]] = ()
    ) -> None:
        """Fold (rows x signals) category slots (negative = null / absent / wrong type) into categorical signals."""
        fold_categorical_segments([self], _ONE_SEGMENT, first, slots, new_values)

    def fold_pair_sums(self, sums: NDArray[np.float64]) -> None:
        """Add the (4, d, d) pairwise sums of a block of rows (see :func:`stats.correlation.pair_sums`)."""
        self.mv_sums += sums

    def note_new_values(self, j: int, values: Iterable[Any]) -> None:
        tally: dict[str, int] = {}
        for value in values:
            key = value if type(value) is str else repr(value)
            tally[key] = tally.get(key, 0) + 1
        _bounded_merge(self.new_values[j], tally.items())

    def count_events(self, stream: str, ts: NDArray[np.float64], late: int = 0) -> None:
        if len(ts) == 0:
            return
        self.events[STREAMS.index(stream)] += len(ts)
        self.ts_min = min(self.ts_min, float(ts.min()))
        self.ts_max = max(self.ts_max, float(ts.max()))
        self.late += late

    def note_unknown_fields(self, names: Iterable[str]) -> None:
        tally: dict[str, int] = {}
        for name in names:
            tally[name] = tally.get(name, 0) + 1
        if tally:
            _bounded_merge(self.unknown_fields, tally.items())

    # ---- algebra -------------------------------------------------------------------------------------------
    def merge(self, other: WindowSketch) -> WindowSketch:
        """Add ``other`` into this sketch in place and return it."""
        if other.layout.fingerprint != self.layout.fingerprint:
            raise ValueError("cannot merge sketches of different layouts (different reference profiles)")
        self.num_hist += other.num_hist
        self.num_codes += other.num_codes
        self.num_sum += other.num_sum
        self.num_sumsq += other.num_sumsq
        np.fmin(self.num_min, other.num_min, out=self.num_min)
        np.fmax(self.num_max, other.num_max, out=self.num_max)
        self.num_out += other.num_out
        self.mv_sums += other.mv_sums
        self.cat_hist += other.cat_hist
        self.cat_codes += other.cat_codes
        for mine, theirs in zip(self.new_values, other.new_values, strict=True):
            _bounded_merge(mine, theirs.items())
        _bounded_merge(self.unknown_fields, other.unknown_fields.items())
        self.events += other.events
        self.late += other.late
        self.ts_min = min(self.ts_min, other.ts_min)
        self.ts_max = max(self.ts_max, other.ts_max)
        return self

    __iadd__ = merge

    def copy(self) -> WindowSketch:
        return WindowSketch(self.layout).merge(self)

    @property
    def total_events(self) -> int:
        return int(self.events.sum())

    @property
    def primary_events(self) -> int:
        """Events of the busiest input stream: what a window's size is measured in."""
        return int(self.events[:2].max())

    # ---- derived figures -----------------------------------------------------------------------------------
    def numeric_count(self, i: int) -> int:
        return int(self.num_codes[i, 0])

    def numeric_mean_std(self, i: int) -> tuple[float, float]:
        n = self.num_codes[i, 0]
        if n == 0:
            return float("nan"), float("nan")
        m1 = self.num_sum[i] / n
        var = max(self.num_sumsq[i] / n - m1 * m1, 0.0)
        return float(self.layout.means[i] + self.layout.scales[i] * m1), float(
            self.layout.scales[i] * np.sqrt(var)
        )

    def numeric_counts(self, i: int) -> NDArray[np.int64]:
        return self.num_hist[i, : self.layout.numeric[i].profile.n_bins]

    def categorical_counts(self, i: int) -> NDArray[np.int64]:
        return self.cat_hist[i, : self.layout.categorical[i].profile.n_bins]

    # ---- snapshots -----------------------------------------------------------------------------------------
    # Versioned plain data, never pickle: a magic, a small JSON header (version, layout fingerprint, the
    # bounded tallies and scalars), then every fixed-shape array as little-endian bytes in a fixed order. The
    # shapes come from the layout, so decoding is a handful of np.frombuffer calls (about 20x faster than
    # JSON arrays, which matters when partition workers ship a slice sketch several times a second).
    _ARRAYS: Final = (
        "num_hist",
        "num_codes",
        "num_out",
        "cat_hist",
        "cat_codes",
        "events",
        "num_sum",
        "num_sumsq",
        "num_min",
        "num_max",
        "mv_sums",
    )

    def to_bytes(self) -> bytes:
        header = orjson.dumps(
            {
                "v": SNAPSHOT_VERSION,
                "layout": self.layout.fingerprint,
                "new_values": self.new_values,
                "unknown_fields": self.unknown_fields,
                "late": self.late,
                "ts": [_finite(self.ts_min), _finite(self.ts_max)],
            }
        )
        body = b"".join(
            np.ascontiguousarray(getattr(self, name))
            .astype("<f8" if getattr(self, name).dtype.kind == "f" else "<i8", copy=False)
            .tobytes()
            for name in self._ARRAYS
        )
        return _MAGIC + _HEADER_LEN.pack(len(header)) + header + body

    @classmethod
    def from_bytes(cls, data: bytes, layout: SketchLayout) -> WindowSketch:
        if data[:4] != _MAGIC:
            raise SnapshotError("not a window sketch snapshot (bad magic)")
        (size,) = _HEADER_LEN.unpack_from(data, 4)
        start = 4 + _HEADER_LEN.size
        try:
            raw = orjson.loads(data[start : start + size])
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"window sketch snapshot header is not JSON: {exc}") from exc
        if raw.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported window sketch snapshot version {raw.get('v')!r}")
        if raw.get("layout") != layout.fingerprint:
            raise SnapshotError("window sketch snapshot was taken with a different reference profile")
        sketch = cls(layout)
        offset = start + size
        for name in cls._ARRAYS:
            target = getattr(sketch, name)
            end = offset + target.size * 8
            if end > len(data):
                raise SnapshotError("window sketch snapshot is truncated")
            dtype = "<f8" if target.dtype.kind == "f" else "<i8"
            target[...] = np.frombuffer(data, dtype=dtype, count=target.size, offset=offset).reshape(
                target.shape
            )
            offset = end
        if offset != len(data):
            raise SnapshotError("window sketch snapshot has trailing bytes (another layout?)")
        sketch.new_values = [dict(d) for d in raw["new_values"]]
        sketch.unknown_fields = dict(raw["unknown_fields"])
        sketch.late = int(raw["late"])
        ts_min, ts_max = raw["ts"]
        sketch.ts_min = np.inf if ts_min is None else float(ts_min)
        sketch.ts_max = -np.inf if ts_max is None else float(ts_max)
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowSketch):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


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
