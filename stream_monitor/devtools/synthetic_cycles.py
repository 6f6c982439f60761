"""A seeded stream with a recurring cycle, for the seasonality tests and ``scripts/bench_seasonal.py``.

``x`` is ``amplitude * sin(2 pi ts / period)`` plus noise of sd 1; ``w`` follows the same cycle at amplitude
1 with noise of its own (so it correlates with ``x`` through the cycle alone: not within a phase); ``y`` is
noise. Arrivals are a Poisson process at ``rate`` events per second.

>>> events = cyclic_events(seed=0, start=0.0, seconds=10.0, period=3600.0, rate=2.0)
>>> len(events), sorted(events[0]["features"])
(20, ['w', 'x', 'y'])
"""

from __future__ import annotations

from typing import Any

import numpy as np


def cyclic_events(
    seed: int,
    start: float,
    seconds: float,
    period: float,
    rate: float,
    amplitude: float = 2.0,
    model_id: str = "cyclic",
) -> list[dict[str, Any]]:
    """Feature events of ``model_id`` over ``[start, start + seconds)``, in time order."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    ts = start + np.sort(rng.uniform(0.0, seconds, n))
    cycle = np.sin(2 * np.pi * ts / period)
    x = amplitude * cycle + rng.normal(0.0, 1.0, n)
    y = rng.normal(0.0, 1.0, n)
    w = cycle + rng.normal(0.0, 1.0, n)
    return [
        {"event_id": f"{seed}-{i}", "model_id": model_id, "ts": t, "features": {"x": a, "y": b, "w": c}}
        for i, (t, a, b, c) in enumerate(zip(ts.tolist(), x.tolist(), y.tolist(), w.tolist(), strict=True))
    ]
