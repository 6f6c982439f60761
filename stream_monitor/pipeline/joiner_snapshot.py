"""The joiner's state on the wire: versioned plain data (JSON; arrays as base64 little-endian bytes).

The format (``stream-monitor.joiner/v1``) lives here, apart from the join, so that changing it is one module's
change. :meth:`PredictionLabelJoiner.snapshot <stream_monitor.pipeline.joiner.PredictionLabelJoiner.snapshot>`
gathers the live rows of its tables into a :class:`JoinerState`, and ``restore`` reinstalls one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from stream_monitor.core.errors import SnapshotError
from stream_monitor.pipeline.join_results import _COUNTERS
from stream_monitor.pipeline.lag_histogram import LagHistogram

__all__ = ["JoinerState", "decode_joiner_state", "encode_joiner_state"]

_FORMAT: Final = "stream-monitor.joiner/v1"


@dataclass(frozen=True)
class JoinerState:
    """A joiner's state as arrays: what a snapshot holds (the configuration is not part of it).

    ``predictions`` has the columns ``key``, ``ts``, ``predicted`` and ``score``; ``early_labels`` has ``key``,
    ``ts`` and ``label``; ``retired`` has ``key`` and ``state``.
    """

    counters: dict[str, int]
    lag: LagHistogram
    predictions: dict[str, npt.NDArray[Any]]
    early_labels: dict[str, npt.NDArray[Any]]
    retired: dict[str, npt.NDArray[Any]]


def _pack(arr: npt.NDArray[Any]) -> dict[str, str]:
    a = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.str, "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(obj: Mapping[str, str]) -> npt.NDArray[Any]:
    return np.frombuffer(base64.b64decode(obj["data"]), np.dtype(obj["dtype"])).copy()


def encode_joiner_state(state: JoinerState) -> bytes:
    """Serialise a joiner's state; :func:`decode_joiner_state` inverts it."""
    return orjson.dumps(
        {
            "format": _FORMAT,
            "counters": state.counters,
            "lag": state.lag.to_dict(),
            "predictions": {k: _pack(v) for k, v in state.predictions.items()},
            "early_labels": {k: _pack(v) for k, v in state.early_labels.items()},
            "retired": {k: _pack(v) for k, v in state.retired.items()},
        }
    )


def decode_joiner_state(data: bytes) -> JoinerState:
    """Parse bytes from :func:`encode_joiner_state`.

    Raises
    ------
    stream_monitor.core.errors.SnapshotError
        If the bytes are not a joiner snapshot of a supported version.
    """
    try:
        state = orjson.loads(data)
        if state.get("format") != _FORMAT:
            raise SnapshotError(f"not a {_FORMAT} snapshot: format {state.get('format')!r}")
        counters = {name: int(state["counters"][name]) for name in _COUNTERS}
        lag = LagHistogram.from_dict(state["lag"])
        p = {k: _unpack(v) for k, v in state["predictions"].items()}
        e = {k: _unpack(v) for k, v in state["early_labels"].items()}
        r = {k: _unpack(v) for k, v in state["retired"].items()}
    except SnapshotError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"corrupt joiner snapshot: {exc!r}") from exc
    return JoinerState(counters, lag, p, e, r)
