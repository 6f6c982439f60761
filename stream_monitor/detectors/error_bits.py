"""A classifier's error bits (1 = wrong) fed to a River adapter in the polarity it expects.

Error bits
----------
:class:`BinaryErrorDetector` is the one way the monitor feeds a classifier's error stream (1 = wrong) to any
of these detectors. River 0.26.1's ``FHDDM``, fed the error bit as its docstring says, fires when the error
rate *falls*; the wrapper feeds it correctness (``1 - error``) instead, and a test pins that behaviour so an
upstream fix is noticed. Missing values must be filtered before: one NaN blinds ADWIN and PageHinkley for
good, so every adapter raises ``ValueError`` on a non-finite input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from stream_monitor.detectors.river_base import RiverAdapter
from stream_monitor.detectors.river_registry import make_detector

__all__ = ["BinaryErrorDetector", "make_error_detector"]


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
