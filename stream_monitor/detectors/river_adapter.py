"""River's drift detectors behind stream-monitor's own protocol: the only module that imports ``river``.

River is pinned (0.26.1): its API has changed between releases (``update`` returns ``None`` since 0.21,
HDDM was renamed in 0.25, ADWIN moved to a compiled core). Every touch-point is here, and only River's public
API is used: a constructor, ``update``, ``drift_detected`` and ``warning_detected``.

The adapters share :class:`~stream_monitor.detectors.river_base.RiverAdapter` (inputs kept for the replay,
snapshots); :mod:`stream_monitor.detectors.river_registry` builds them by name and
:mod:`stream_monitor.detectors.error_bits` feeds them a classifier's error bits.

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

import math
from collections.abc import Callable
from typing import Any, Final

from river import drift
from river.drift import binary

from stream_monitor.detectors.river_base import DEFAULT_HISTORY, RiverAdapter, _check_int, _check_open_unit

__all__ = [
    "ADWINAdapter",
    "DDMAdapter",
    "EDDMAdapter",
    "FHDDMAdapter",
    "HDDMAAdapter",
    "HDDMWAdapter",
    "PageHinkleyAdapter",
]

# River constructors without annotations, typed once here for mypy --strict
_HDDMA: Final[Callable[..., Any]] = binary.HDDMA
_HDDMW: Final[Callable[..., Any]] = binary.HDDMW
_ADWIN: Final[Callable[..., Any]] = drift.ADWIN


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
    >>> from stream_monitor.detectors.error_bits import BinaryErrorDetector
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
