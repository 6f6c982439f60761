"""A two-sided CUSUM on standardised window figures, for slow drifts that no single window shows.

Each update takes one window's figure already standardised to N(0, 1) under no drift (e.g. the window mean's
distance from the reference mean over its standard error). Page's CUSUM accumulates evidence above a reference
value ``k`` (half the smallest shift worth catching, in those units) and signals when either side passes ``h``.
``h`` is solved from the false-alarm budget with Siegmund's approximation of the in-control run length, so the
same budget that sets the window thresholds sets this detector too.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> det = Cusum(k=0.5, h=Cusum.h_for_run_length(10_000, k=0.5))
>>> flagged = []
>>> for t in range(400):
...     det.update(rng.normal() + (0.0 if t < 200 else 1.0))
...     if det.drift_detected:
...         flagged.append(t)
...         det.reset()
>>> 200 <= flagged[0] < 230, len(flagged) > 0
(True, True)
"""

from __future__ import annotations

import math
from typing import Any


class Cusum:
    """Page's two-sided CUSUM. ``k``: reference value; ``h``: decision interval (both in sd units)."""

    def __init__(self, k: float = 0.5, h: float = 5.0) -> None:
        if not k > 0:
            raise ValueError(f"k must be > 0, got {k}")
        if not h > 0:
            raise ValueError(f"h must be > 0, got {h}")
        self.k = k
        self.h = h
        self._upper = 0.0
        self._lower = 0.0
        self._drift = False

    def update(self, z: float, k: float | None = None) -> None:
        """Add one standardised figure; ``k`` overrides the reference value for this step (it may only be
        raised above ``self.k``, which keeps the in-control run length at least what ``h`` was solved for)."""
        if not math.isfinite(z):
            raise ValueError(f"CUSUM input must be finite, got {z}")
        step_k = self.k if k is None else max(self.k, k)
        self._upper = max(0.0, self._upper + z - step_k)
        self._lower = max(0.0, self._lower - z - step_k)
        self._drift = self._upper > self.h or self._lower > self.h

    @property
    def drift_detected(self) -> bool:
        return self._drift

    @property
    def direction(self) -> int:
        """+1 if the upward side leads, -1 if the downward side does, 0 when both are at rest."""
        if self._upper == self._lower:
            return 0
        return 1 if self._upper > self._lower else -1

    @property
    def statistic(self) -> float:
        return max(self._upper, self._lower)

    def reset(self) -> None:
        self._upper = self._lower = 0.0
        self._drift = False

    def snapshot(self) -> dict[str, Any]:
        return {"k": self.k, "h": self.h, "upper": self._upper, "lower": self._lower}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Cusum:
        det = cls(k=float(state["k"]), h=float(state["h"]))
        det._upper = float(state["upper"])
        det._lower = float(state["lower"])
        det._drift = det._upper > det.h or det._lower > det.h
        return det

    @staticmethod
    def run_length(h: float, k: float) -> float:
        """Siegmund's approximation of the one-sided in-control average run length."""
        b = h + 1.166
        return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)

    @classmethod
    def h_for_run_length(cls, windows: float, k: float = 0.5) -> float:
        """Decision interval whose two-sided in-control run length is ``windows`` (bisection)."""
        target = 2.0 * windows  # two one-sided charts share the false alarms
        lo, hi = 0.01, 1.0
        while cls.run_length(hi, k) < target:
            hi *= 2.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if cls.run_length(mid, k) < target:
                lo = mid
            else:
                hi = mid
        return hi
