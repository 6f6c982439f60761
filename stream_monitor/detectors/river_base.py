"""The base of the River adapters: a River detector plus the inputs it saw, so its state is plain data.

The subclasses (one per River detector) live in :mod:`stream_monitor.detectors.river_adapter`, the only module
that imports ``river``; this base only calls what their ``_build`` returns.

Snapshots
---------
River detectors do not serialise (ADWIN's compiled core cannot even be pickled), so each adapter keeps the
inputs its detector has seen since the detector last reset, and a snapshot is those inputs (one bit each for a
0/1 stream) plus the current flags; :meth:`RiverAdapter.restore` rebuilds the detector by replaying them. A
River detector resets itself on the update after it signals drift, so the inputs before a drift are dropped
then. To keep that history bounded in a stream that never drifts, once it holds ``history`` inputs the
detector is rebuilt from the most recent ``history // 4`` of them (a sliding restart, which adds a third to
River's work per update on average; it also stops DDM-style detectors, whose baseline only ever tightens, from
judging today against last month). The live detector is therefore always "fresh detector + replay of the kept
inputs", which is exactly what a restore rebuilds, so a snapshot then restore gives identical future outputs;
it also survives a River upgrade, since the inputs are replayed through whatever the new version computes. A
drift that a rebuilt detector would signal inside the replayed inputs is not reported.
"""

from __future__ import annotations

import abc
import base64
import inspect
import math
from array import array
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from stream_monitor.core.errors import SnapshotError

__all__ = ["DEFAULT_HISTORY", "RIVER_VERSION", "RiverAdapter", "StreamDetector"]

# The pinned River release (see river_adapter.py), recorded in every snapshot
RIVER_VERSION: Final = "0.26.1"
DEFAULT_HISTORY: Final = 100_000
_FORMAT: Final = "stream-monitor.river-detector/v1"


@runtime_checkable
class StreamDetector(Protocol):
    """A sequential change detector fed one value at a time."""

    def update(self, x: float) -> None:
        """Feed one value (finite)."""

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a change."""

    @property
    def warning_detected(self) -> bool:
        """Whether the last update signalled a possible change (always ``False`` if unsupported)."""

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data."""

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one from :meth:`snapshot`."""


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_open_unit(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


class RiverAdapter(abc.ABC):
    """Base of the adapters: a River detector plus the inputs it saw since its last reset.

    Subclasses store their constructor arguments as public attributes of the same name, validate them, and
    build the River detector in :meth:`_build`.

    Parameters
    ----------
    history : int
        Most inputs kept for the replay; beyond it the detector restarts from the latest ``history // 4``.
    """

    name: ClassVar[str]
    #: True for a detector that signals when the mean of its input falls (fed correctness, not errors).
    fires_on_decrease: ClassVar[bool] = False

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        _check_int("history", history, 2)
        self.history = history
        self._inputs: bytearray | array[float] = bytearray()  # bytes while every input is 0 or 1
        self._detector = self._build()
        self._drift = False
        self._warning = False

    @abc.abstractmethod
    def _build(self) -> Any:
        """A fresh River detector with this adapter's parameters."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments, by name."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled drift (the detector resets on the next update)."""
        return self._drift

    @property
    def warning_detected(self) -> bool:
        """Whether the last update signalled a warning; always ``False`` for ADWIN and PageHinkley."""
        return self._warning

    def update(self, x: float) -> None:
        """Feed one value.

        Raises
        ------
        ValueError
            If ``x`` is NaN or infinite: filter missing values first.
        """
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{self.name}: input must be finite, got {x!r} (filter missing values first)")
        self._step(x)

    def _step(self, x: float) -> None:
        if len(self._inputs) >= self.history:
            del self._inputs[: len(self._inputs) - self.history // 4]
            self._detector = self._replay(self._inputs)
        if isinstance(self._inputs, bytearray):
            if x == 0.0 or x == 1.0:
                self._inputs.append(int(x))
            else:
                self._inputs = array("d", self._inputs)
                self._inputs.append(x)
        else:
            self._inputs.append(x)
        det = self._detector
        det.update(x)
        self._drift = bool(det.drift_detected)
        self._warning = bool(getattr(det, "warning_detected", False))
        if self._drift:  # River resets the detector on the next update: what came before no longer matters
            self._inputs = bytearray()

    def update_many(self, xs: npt.ArrayLike) -> list[int]:
        """Feed values in order; return the indices at which drift was signalled.

        After each signal the detector starts afresh (River resets it on the next update).

        Raises
        ------
        ValueError
            If any value is not finite; nothing is fed then.
        """
        values = np.asarray(xs, np.float64).ravel()
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{self.name}: inputs must be finite (filter missing values first)")
        hits = []
        for i, x in enumerate(values.tolist()):
            self._step(x)
            if self._drift:
                hits.append(i)
        return hits

    def _replay(self, inputs: bytearray | array[float]) -> Any:
        det = self._build()
        for x in inputs:
            det.update(float(x))
        return det

    def snapshot(self) -> dict[str, Any]:
        """Plain data: parameters, current flags and the kept inputs (bit-packed when all are 0/1)."""
        if isinstance(self._inputs, bytearray):
            raw = np.packbits(np.frombuffer(self._inputs, np.uint8)).tobytes()
            encoding = "bits"
        else:
            raw = np.asarray(self._inputs, "<f8").tobytes()
            encoding = "<f8"
        return {
            "format": _FORMAT,
            "river": RIVER_VERSION,
            "detector": self.name,
            "params": self.params(),
            "drift": self._drift,
            "warning": self._warning,
            "inputs": {
                "encoding": encoding,
                "n": len(self._inputs),
                "data": base64.b64encode(raw).decode("ascii"),
            },
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Rebuild the state of :meth:`snapshot` by replaying its inputs.

        Raises
        ------
        stream_monitor.core.errors.SnapshotError
            If the state is not a snapshot of a detector of this kind with the same parameters.
        """
        try:
            if state["format"] != _FORMAT:
                raise SnapshotError(f"not a {_FORMAT} snapshot: format {state['format']!r}")
            if state["detector"] != self.name or state["params"] != self.params():
                raise SnapshotError(
                    f"snapshot of {state['detector']} {state['params']} cannot restore "
                    f"{self.name} {self.params()}"
                )
            enc, n = state["inputs"]["encoding"], int(state["inputs"]["n"])
            raw = base64.b64decode(state["inputs"]["data"])
            inputs: bytearray | array[float]
            if enc == "bits":
                inputs = bytearray(np.unpackbits(np.frombuffer(raw, np.uint8), count=n).tobytes())
            elif enc == "<f8":
                inputs = array("d", np.frombuffer(raw, "<f8").tolist())
            else:
                raise SnapshotError(f"unknown input encoding {enc!r}")
            if len(inputs) != n:
                raise SnapshotError(f"snapshot holds {len(inputs)} inputs, declares {n}")
            drift_flag, warning_flag = bool(state["drift"]), bool(state["warning"])
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"corrupt detector snapshot: {exc!r}") from exc
        self._inputs = inputs
        self._detector = self._replay(inputs)
        self._drift, self._warning = drift_flag, warning_flag

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
