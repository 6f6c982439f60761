"""Internal wire formats of the service: partial-sketch messages (stage 1 -> stage 2) and state snapshots.

Both are versioned plain data, never pickle. A partial is a small JSON header followed by the raw bytes of
each closed slice's sketch (:meth:`WindowSketch.to_bytes`), so stage 2 hands them to ``from_bytes`` without
another JSON round trip. A snapshot is zlib-compressed JSON: a wide model's open slices are mostly zero bins.

>>> p = Partial(model="m", source="features:0", stream="features", boundary=12, idle=False,
...             offsets=(100, 250), watermark=1.5, slices=[(10, b'{"a":1}'), (11, b'{"b":2}')])
>>> decode_partial(encode_partial(p)) == p
True
>>> decode_snapshot(encode_snapshot({"v": 1, "x": [1, 2]}))
{'v': 1, 'x': [1, 2]}

A partial may also carry a :class:`RowBatch`: the parsed prediction, label or segment rows of one batch of one
source, for stage 2's :class:`~stream_monitor.pipeline.performance_monitor.PerformanceMonitor`. Its columns
travel as raw little-endian numpy bytes behind a JSON header holding the event ids (about 40 bytes a row plus
the id).

>>> rows = RowBatch(["e-1", "e-2"], {"offset": np.array([7, 8]), "ts": np.array([1.5, float("nan")])})
>>> back = decode_partial(encode_partial(Partial("m", "labels:0", "labels", 3, False, (7, 9), None, rows=rows)))
>>> back.rows.event_ids, back.rows.columns["offset"].tolist(), back.rows.columns["ts"][0]
(['e-1', 'e-2'], [7, 8], np.float64(1.5))
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.errors import SnapshotError
from stream_monitor.stats.sketches import WindowSketch

PARTIAL_MAGIC: Final = b"SMP1"
SNAPSHOT_MAGIC: Final = b"SMS1"
NO_BOUNDARY: Final = -(2**62)  # the SliceFolder's "nothing handed out yet"
_LEN: Final = struct.Struct(">I")


@dataclass(eq=False)
class RowBatch:
    """Parsed rows of one model from one source, in source-offset order.

    ``columns`` always holds ``offset`` (the source offset of each row's message, for replay skipping),
    ``slice`` (the slice stage 1 assigned the row to) and ``ts``; then ``predicted`` and ``score``
    (predictions), ``label`` (labels) or ``segments`` (features: the segment columns' slots, one row each).
    """

    event_ids: list[str]
    columns: dict[str, NDArray[Any]]

    def __len__(self) -> int:
        return len(self.event_ids)

    def take(self, index: NDArray[Any]) -> RowBatch:
        """The rows at ``index`` (an integer index or a boolean mask)."""
        positions = np.arange(len(self.event_ids))[index]
        return RowBatch(
            [self.event_ids[i] for i in positions.tolist()], {k: v[index] for k, v in self.columns.items()}
        )

    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.columns.values()) + sum(len(e) + 3 for e in self.event_ids)

    @staticmethod
    def concat(batches: list[RowBatch]) -> RowBatch:
        if len(batches) == 1:
            return batches[0]
        return RowBatch(
            [e for b in batches for e in b.event_ids],
            {k: np.concatenate([b.columns[k] for b in batches]) for k in batches[0].columns},
        )


def encode_rows(rows: RowBatch) -> bytes:
    cols = {k: np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")) for k, v in rows.columns.items()}
    header = orjson.dumps(
        {"ids": rows.event_ids, "cols": [[k, v.dtype.str, list(v.shape)] for k, v in cols.items()]}
    )
    return b"".join([_LEN.pack(len(header)), header, *(v.tobytes() for v in cols.values())])


def decode_rows(data: bytes) -> RowBatch:
    (n,) = _LEN.unpack_from(data, 0)
    head = orjson.loads(data[4 : 4 + n])
    pos = 4 + n
    columns: dict[str, NDArray[Any]] = {}
    for name, dtype, shape in head["cols"]:
        dt = np.dtype(dtype)
        if dt.kind not in "iuf":
            raise ValueError(f"unexpected column type {dtype!r}")
        size = dt.itemsize * int(np.prod(shape))
        columns[str(name)] = (
            np.frombuffer(data[pos : pos + size], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
        )
        pos += size
    if pos != len(data):
        raise ValueError("trailing or missing bytes in rows")
    ids = head["ids"]
    if not isinstance(ids, list) or any(len(c) != len(ids) for c in columns.values()):
        raise ValueError("rows of unequal lengths")
    return RowBatch([str(e) for e in ids], columns)


@dataclass(frozen=True)
class Partial:
    """What one input partition (``source``) tells stage 2 about one model.

    ``slices`` are the slices it closed, oldest first, as (slice id, sketch bytes), or (slice id, sketch) when
    the partial never leaves the process (:class:`~stream_monitor.pipeline.local.Engine`); ``boundary``
    promises that every slice below it has now been sent; ``idle`` says the source has no open slice and no
    recent event of this model, so stage 2 may stop waiting for it. ``offsets`` is the range of source offsets
    processed when the message was made (first, next), for tracing a partial back to its input.
    """

    model: str
    source: str
    stream: str
    boundary: int
    idle: bool
    offsets: tuple[int, int]
    watermark: float | None
    slices: list[tuple[int, bytes | WindowSketch]] = field(default_factory=list)
    rows: RowBatch | None = None


def encode_partial(p: Partial) -> bytes:
    rows = b"" if p.rows is None else encode_rows(p.rows)
    slices = [(sid, data if isinstance(data, bytes) else data.to_bytes()) for sid, data in p.slices]
    header = orjson.dumps(
        {
            "v": 1,
            "model": p.model,
            "source": p.source,
            "stream": p.stream,
            "boundary": p.boundary,
            "idle": p.idle,
            "offsets": list(p.offsets),
            "watermark": p.watermark,
            "slices": [[sid, len(data)] for sid, data in slices],
            **({} if p.rows is None else {"rows": len(rows)}),
        }
    )
    return b"".join([PARTIAL_MAGIC, _LEN.pack(len(header)), header, *(data for _, data in slices), rows])


def decode_partial(data: bytes) -> Partial:
    """Parse a partial; raises :class:`SnapshotError` on anything malformed (never trusted blindly)."""
    try:
        if data[:4] != PARTIAL_MAGIC:
            raise ValueError("bad magic")
        (n,) = _LEN.unpack_from(data, 4)
        head = orjson.loads(data[8 : 8 + n])
        if head.get("v") != 1:
            raise ValueError(f"unsupported version {head.get('v')!r}")
        pos = 8 + n
        slices: list[tuple[int, bytes | WindowSketch]] = []
        for sid, length in head["slices"]:
            slices.append((int(sid), bytes(data[pos : pos + length])))
            pos += length
        rows = None
        if head.get("rows") is not None:
            rows = decode_rows(bytes(data[pos : pos + int(head["rows"])]))
            pos += int(head["rows"])
        if pos != len(data):
            raise ValueError("trailing or missing bytes")
        lo, hi = head["offsets"]
        return Partial(
            str(head["model"]),
            str(head["source"]),
            str(head["stream"]),
            int(head["boundary"]),
            bool(head["idle"]),
            (int(lo), int(hi)),
            head["watermark"],
            slices,
            rows,
        )
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise SnapshotError(f"malformed partial message: {exc}") from None


def encode_snapshot(state: dict[str, Any]) -> bytes:
    return SNAPSHOT_MAGIC + zlib.compress(orjson.dumps(state), 1)


def decode_snapshot(data: bytes) -> dict[str, Any]:
    if data[:4] != SNAPSHOT_MAGIC:
        raise SnapshotError("not a stream-monitor state snapshot")
    try:
        out = orjson.loads(zlib.decompress(data[4:]))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"corrupt state snapshot: {exc}") from None
    if not isinstance(out, dict):
        raise SnapshotError("corrupt state snapshot: not an object")
    return out
