"""Mergeable window sketches: everything the detectors need from a window, in fixed-size numpy arrays.

A :class:`WindowSketch` holds, per numeric signal, a histogram on the reference edges, counts by cell code
(ok / null / absent / wrong type / infinite) and standardised moments; per categorical signal, counts on the
reference categories plus "other" and a bounded tally of unseen values; and the window's event counts and time
range. Its size depends on models x signals x bins, never on how many events it has seen.

Sketches of the same layout merge by addition, so per-partition partials of a window merge into exactly the
sketch of the whole window, in any order (property-tested in ``tests/unit/test_sketches.py``).

>>> from stream_monitor.stats.profiles import NumericProfile
>>> from stream_monitor.stats.sketch_layout import NumericSignal, SketchLayout
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

import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.errors import SnapshotError
from stream_monitor.stats.sketch_folding import _ONE_SEGMENT, fold_categorical_segments, fold_numeric_segments
from stream_monitor.stats.sketch_layout import N_CAT_CODES, N_NUMERIC_CODES, SketchLayout

STREAMS: Final = ("features", "predictions", "labels")
MAX_TRACKED_VALUES: Final = 16  # unseen categories / unknown fields remembered per window, for alert details
SNAPSHOT_VERSION: Final = 2  # 2: binary arrays after a JSON header
_MAGIC: Final = b"SMK2"
_HEADER_LEN: Final = struct.Struct("<I")


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
