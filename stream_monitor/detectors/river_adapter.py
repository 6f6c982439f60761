"""River's drift detectors behind stream-monitor's own protocol: the only module that imports ``river``.

River is pinned (0.26.1): its API has changed between releases (``update`` returns ``None`` since 0.21,
HDDM was renamed in 0.25, ADWIN moved to a compiled core). Every touch-point is here, and only River's public
API is used: a constructor, ``update``, ``drift_detected`` and ``warning_detected``.

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

Error bits
----------
:class:`BinaryErrorDetector` is the one way the monitor feeds a classifier's error stream (1 = wrong) to any
of these detectors. River 0.26.1's ``FHDDM``, fed the error bit as its docstring says, fires when the error
rate *falls*; the wrapper feeds it correctness (``1 - error``) instead, and a test pins that behaviour so an
upstream fix is noticed. Missing values must be filtered before: one NaN blinds ADWIN and PageHinkley for
good, so every adapter raises ``ValueError`` on a non-finite input.

Cost per update
---------------
Measured with ``scripts/bench_join.py``: CPU time per input through ``update_many`` over 200,000
Bernoulli(0.1) error bits with the default ``history`` (sliding restarts included), River's own ``update`` in
brackets, on a shared 2-core machine under load (expect +-30 %): ddm 1.9 us (0.65), eddm 1.1 us (0.37),
hddm_a 9.7 us (5.7), hddm_w 9.7 us (8.7), fhddm 1.6 us (0.59), adwin 0.94 us (0.21), page_hinkley 1.5 us
(0.84). A single ``update`` call costs about 0.3 us more. Never use River's ``KSWIN`` per event (about 390 us
per update).
"""

from __future__ import annotations

import abc
import base64
import inspect
import math
from array import array
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from river import drift
from river.drift import binary

from stream_monitor.core.errors import SnapshotError, UnknownDetectorError

__all__ = [
    "DETECTORS",
    "RIVER_VERSION",
    "ADWINAdapter",
    "BinaryErrorDetector",
    "DDMAdapter",
    "EDDMAdapter",
    "FHDDMAdapter",
    "HDDMAAdapter",
    "HDDMWAdapter",
    "PageHinkleyAdapter",
    "RiverAdapter",
    "StreamDetector",
    "make_detector",
    "make_error_detector",
]

RIVER_VERSION: Final = "0.26.1"
DEFAULT_HISTORY: Final = 100_000
_FORMAT: Final = "stream-monitor.river-detector/v1"
# River constructors without annotations, typed once here for mypy --strict
_HDDMA: Final[Callable[..., Any]] = binary.HDDMA
_HDDMW: Final[Callable[..., Any]] = binary.HDDMW
_ADWIN: Final[Callable[..., Any]] = drift.ADWIN


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


class DDMAdapter(RiverAdapter):
    """River's ``DDM`` (Drift Detection Method, Gama et al. 2004) on a 0/1 error stream.

    Signals when ``p + s`` exceeds ``p_min + drift_threshold * s_min`` (``p`` the error rate so far, ``s`` its
    binomial standard deviation).

    Parameters
    ----------
    warm_start : int
        Inputs before a change can be signalled.
    warning_threshold, drift_threshold : float
        Multiples of the minimum standard deviation for a warning and for drift; ``0 < warning <= drift``.
    history : int
        See :class:`RiverAdapter`.

    Notes
    -----
    With River's defaults DDM signalled before the change in 48 of 100 seeded streams like the one below;
    ``warm_start=500, warning_threshold=3, drift_threshold=4`` did in none of 200, and still caught the change
    within 320 predictions.

    Examples
    --------
    An error rate that rises from 10 % to 40 % after 2000 predictions:

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(1000) < 0.4])
    >>> detector = BinaryErrorDetector(DDMAdapter())
    >>> detector.update_many(errors)
    [2140]
    """

    name = "ddm"

    def __init__(
        self,
        warm_start: int = 30,
        warning_threshold: float = 2.0,
        drift_threshold: float = 3.0,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        _check_int("warm_start", warm_start, 1)
        if not 0.0 < warning_threshold <= drift_threshold < math.inf:
            raise ValueError(
                "need 0 < warning_threshold <= drift_threshold, "
                f"got {warning_threshold!r}, {drift_threshold!r}"
            )
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        super().__init__(history)

    def _build(self) -> Any:
        return binary.DDM(self.warm_start, self.warning_threshold, self.drift_threshold)


class EDDMAdapter(RiverAdapter):
    """River's ``EDDM`` (Early DDM): watches the distance between consecutive errors.

    Parameters
    ----------
    warm_start : int
        Errors before a change can be signalled.
    alpha, beta : float
        Warning and drift levels of the ratio to the best ``mean + 2 sd`` distance; ``0 < beta <= alpha < 1``.
    history : int
        See :class:`RiverAdapter`.

    Notes
    -----
    Noisy on a stable stream: at a 10 % error rate it signalled about 3 times per 20,000 predictions even
    with ``warm_start=250`` (in 96 of 100 seeded 2000-prediction streams with the defaults). Prefer DDM, HDDM
    or ADWIN.
    """

    name = "eddm"

    def __init__(
        self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9, history: int = DEFAULT_HISTORY
    ) -> None:
        _check_int("warm_start", warm_start, 1)
        if not 0.0 < beta <= alpha < 1.0:
            raise ValueError(f"need 0 < beta <= alpha < 1, got alpha={alpha!r}, beta={beta!r}")
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        super().__init__(history)

    def _build(self) -> Any:
        return binary.EDDM(self.warm_start, self.alpha, self.beta)


class _HDDMAdapter(RiverAdapter):
    def __init__(
        self, drift_confidence: float, warning_confidence: float, two_sided_test: bool, history: int
    ) -> None:
        _check_open_unit("drift_confidence", drift_confidence)
        _check_open_unit("warning_confidence", warning_confidence)
        if drift_confidence > warning_confidence:
            raise ValueError(
                "drift_confidence (a significance level) must be <= warning_confidence, got "
                f"{drift_confidence!r} > {warning_confidence!r}"
            )
        if not isinstance(two_sided_test, bool):
            raise ValueError(f"two_sided_test must be a bool, got {two_sided_test!r}")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        super().__init__(history)


class HDDMAAdapter(_HDDMAdapter):
    """River's ``HDDMA`` (Hoeffding bound on moving averages).

    Parameters
    ----------
    drift_confidence, warning_confidence : float
        Significance levels for drift and warning, in (0, 1); ``drift <= warning``.
    two_sided_test : bool
        Also signal a fall of the mean (on an error stream: an improvement).
    history : int
        See :class:`RiverAdapter`.
    """

    name = "hddm_a"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        super().__init__(drift_confidence, warning_confidence, two_sided_test, history)

    def _build(self) -> Any:
        return _HDDMA(self.drift_confidence, self.warning_confidence, self.two_sided_test)


class HDDMWAdapter(_HDDMAdapter):
    """River's ``HDDMW`` (McDiarmid bound on exponentially weighted moving averages).

    Parameters
    ----------
    drift_confidence, warning_confidence : float
        Significance levels for drift and warning, in (0, 1); ``drift <= warning``.
    lambda_val : float
        Weight of the newest input in the moving average, in (0, 1).
    two_sided_test : bool
        Also signal a fall of the mean (on an error stream: an improvement).
    history : int
        See :class:`RiverAdapter`.
    """

    name = "hddm_w"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        lambda_val: float = 0.05,
        two_sided_test: bool = False,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        _check_open_unit("lambda_val", lambda_val)
        self.lambda_val = lambda_val
        super().__init__(drift_confidence, warning_confidence, two_sided_test, history)

    def _build(self) -> Any:
        return _HDDMW(self.drift_confidence, self.warning_confidence, self.lambda_val, self.two_sided_test)


class FHDDMAdapter(RiverAdapter):
    """River's ``FHDDM`` (Fast Hoeffding DDM) over a sliding window.

    In River 0.26.1 it signals when the mean of its input *falls* below its running maximum, so it must be fed
    correctness (1 = right), which :class:`BinaryErrorDetector` does (``fires_on_decrease``).

    Parameters
    ----------
    sliding_window_size : int
        Window of inputs compared with the best window seen.
    confidence_level : float
        Significance level of the Hoeffding bound, in (0, 1).
    short_window_size : int or None
        Also compare a shorter window (stacking FHDDM); ``1 <= short < sliding``.
    history : int
        See :class:`RiverAdapter`.
    """

    name = "fhddm"
    fires_on_decrease = True

    def __init__(
        self,
        sliding_window_size: int = 100,
        confidence_level: float = 1e-6,
        short_window_size: int | None = None,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        _check_int("sliding_window_size", sliding_window_size, 2)
        _check_open_unit("confidence_level", confidence_level)
        if short_window_size is not None:
            _check_int("short_window_size", short_window_size, 1)
            if short_window_size >= sliding_window_size:
                raise ValueError(
                    f"short_window_size must be < sliding_window_size, got {short_window_size!r}"
                )
        self.sliding_window_size = sliding_window_size
        self.confidence_level = confidence_level
        self.short_window_size = short_window_size
        super().__init__(history)

    def _build(self) -> Any:
        return binary.FHDDM(self.sliding_window_size, self.confidence_level, self.short_window_size)


class ADWINAdapter(RiverAdapter):
    """River's ``ADWIN`` (adaptive windowing): signals a change of the mean in either direction.

    Parameters
    ----------
    delta : float
        Significance level, in (0, 1).
    clock : int
        Inputs between checks for a cut.
    max_buckets : int
        Buckets of each size kept.
    min_window_length : int
        Smallest sub-window compared.
    grace_period : int
        Inputs before a change can be signalled.
    history : int
        See :class:`RiverAdapter`.
    """

    name = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        _check_open_unit("delta", delta)
        _check_int("clock", clock, 1)
        _check_int("max_buckets", max_buckets, 1)
        _check_int("min_window_length", min_window_length, 1)
        _check_int("grace_period", grace_period, 1)
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        super().__init__(history)

    def _build(self) -> Any:
        return _ADWIN(self.delta, self.clock, self.max_buckets, self.min_window_length, self.grace_period)


class PageHinkleyAdapter(RiverAdapter):
    """River's ``PageHinkley`` cumulative-deviation test.

    Parameters
    ----------
    min_instances : int
        Inputs before a change can be signalled.
    delta : float
        Magnitude of change tolerated, >= 0.
    threshold : float
        Cumulative deviation that signals a change, > 0.
    alpha : float
        Forgetting factor of the cumulative sums, in (0, 1].
    mode : {"up", "down", "both"}
        Direction watched. Defaults to ``"up"`` (River's default is ``"both"``): on an error stream only a
        rise is a degradation.
    history : int
        See :class:`RiverAdapter`.
    """

    name = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "up",
        history: int = DEFAULT_HISTORY,
    ) -> None:
        _check_int("min_instances", min_instances, 1)
        if not 0.0 <= delta < math.inf:
            raise ValueError(f"delta must be >= 0, got {delta!r}")
        if not 0.0 < threshold < math.inf:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if mode not in ("up", "down", "both"):
            raise ValueError(f"mode must be one of 'up', 'down', 'both', got {mode!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        super().__init__(history)

    def _build(self) -> Any:
        return drift.PageHinkley(self.min_instances, self.delta, self.threshold, self.alpha, self.mode)


DETECTORS: Final[Mapping[str, type[RiverAdapter]]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            DDMAdapter,
            EDDMAdapter,
            HDDMAAdapter,
            HDDMWAdapter,
            FHDDMAdapter,
            ADWINAdapter,
            PageHinkleyAdapter,
        )
    }
)
"""Registered detectors by name: ``ddm``, ``eddm``, ``hddm_a``, ``hddm_w``, ``fhddm``, ``adwin``,
``page_hinkley``."""


def make_detector(name: str, **params: Any) -> RiverAdapter:
    """Build a registered detector by name.

    Raises
    ------
    stream_monitor.core.errors.UnknownDetectorError
        (a ``ValueError``) if the name is not registered; the message lists the valid names.
    ValueError
        If a parameter is unknown (the message lists the valid ones) or invalid.
    """
    cls = DETECTORS.get(name)
    if cls is None:
        raise UnknownDetectorError(name, list(DETECTORS))
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**params)


class BinaryErrorDetector:
    """Feed a classifier's error bits (1 = wrong, 0 = right) to a River adapter, in the polarity it expects.

    Parameters
    ----------
    detector : RiverAdapter
        The detector; one that ``fires_on_decrease`` (FHDDM) is fed ``1 - error``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(1000) < 0.4])
    >>> for name in ("fhddm", "adwin"):
    ...     print(name, make_error_detector(name).update_many(errors))
    fhddm [2066]
    adwin [2079]
    """

    def __init__(self, detector: RiverAdapter) -> None:
        if not isinstance(detector, RiverAdapter):
            raise ValueError(f"detector must be a RiverAdapter, got {type(detector).__name__}")
        self.detector = detector

    @property
    def drift_detected(self) -> bool:
        """Whether the last error signalled drift."""
        return self.detector.drift_detected

    @property
    def warning_detected(self) -> bool:
        """Whether the last error signalled a warning."""
        return self.detector.warning_detected

    def update(self, x: float) -> None:
        """Feed one error bit.

        Raises
        ------
        ValueError
            If ``x`` is not 0 or 1 (NaN included: filter unlabelled predictions first).
        """
        if not (x == 0 or x == 1):
            raise ValueError(f"error bit must be 0 or 1, got {x!r}")
        self.detector.update(1.0 - x if self.detector.fires_on_decrease else float(x))

    def update_many(self, errors: npt.ArrayLike) -> list[int]:
        """Feed error bits in order; return the indices at which drift was signalled.

        Raises
        ------
        ValueError
            If any value is not 0 or 1; nothing is fed then.
        """
        bits = np.asarray(errors, np.float64).ravel()
        if not np.all((bits == 0.0) | (bits == 1.0)):
            raise ValueError("error bits must be 0 or 1 (filter unlabelled predictions first)")
        return self.detector.update_many(1.0 - bits if self.detector.fires_on_decrease else bits)

    def snapshot(self) -> dict[str, Any]:
        """The wrapped detector's snapshot."""
        return self.detector.snapshot()

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the wrapped detector."""
        self.detector.restore(state)

    def __repr__(self) -> str:
        return f"BinaryErrorDetector({self.detector!r})"


def make_error_detector(name: str, **params: Any) -> BinaryErrorDetector:
    """A registered detector by name, wrapped to take error bits (see :func:`make_detector`)."""
    return BinaryErrorDetector(make_detector(name, **params))
