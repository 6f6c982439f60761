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
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream_monitor.errors import SnapshotError

PARTIAL_MAGIC: Final = b"SMP1"
SNAPSHOT_MAGIC: Final = b"SMS1"
NO_BOUNDARY: Final = -(2**62)  # the SliceFolder's "nothing handed out yet"
_LEN: Final = struct.Struct(">I")


@dataclass(frozen=True)
class Partial:
    """What one input partition (``source``) tells stage 2 about one model.

    ``slices`` are the slices it closed, oldest first, as (slice id, sketch bytes); ``boundary`` promises that
    every slice below it has now been sent; ``idle`` says the source has no open slice and no recent event of
    this model, so stage 2 may stop waiting for it. ``offsets`` is the range of source offsets processed when
    the message was made (first, next), for tracing a partial back to its input.
    """

    model: str
    source: str
    stream: str
    boundary: int
    idle: bool
    offsets: tuple[int, int]
    watermark: float | None
    slices: list[tuple[int, bytes]] = field(default_factory=list)


def encode_partial(p: Partial) -> bytes:
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
            "slices": [[sid, len(data)] for sid, data in p.slices],
        }
    )
    return b"".join([PARTIAL_MAGIC, _LEN.pack(len(header)), header, *(data for _, data in p.slices)])


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
        slices = []
        for sid, length in head["slices"]:
            slices.append((int(sid), bytes(data[pos : pos + length])))
            pos += length
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
