"""Heavy-tailed healthy streams stay quiet on the correlation test (marked slow; CI runs it).

Features with Student-t noise (2 degrees of freedom: infinite variance) and rare huge outliers, correlated in
pairs, the reference from the same process: a Pearson correlation of the values swings with every outlier, the
rank-based one the monitor uses does not. A real correlation flip is still found.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_monitor.config.loading import parse_config
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.reference_builder import ReferenceBuilder

pytestmark = pytest.mark.slow

MODEL = "tails"
RATE = 100.0


def _events(n: int, seed: int, start: float, flip_at: int | None = None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    a = rng.standard_t(2, n)
    sign = np.ones(n)
    if flip_at is not None:
        sign[flip_at:] = -1.0
    b = sign * 0.7 * a + 0.5 * rng.standard_t(2, n)
    c = rng.lognormal(0.0, 1.5, n)  # a long right tail, independent
    outlier = rng.random(n) < 0.001
    a = np.where(outlier, a * 1e4, a)
    ts = start + np.arange(n) / RATE
    return [
        {
            "event_id": f"e{seed}-{i}",
            "model_id": MODEL,
            "ts": float(ts[i]),
            "features": {"a": float(a[i]), "b": float(b[i]), "c": float(c[i])},
        }
        for i in range(n)
    ]


def _alerts(live: list[dict[str, Any]]) -> list[Any]:
    builder = ReferenceBuilder(seed=0)
    builder.add_features(_events(30_000, 1, 1_700_000_000.0))
    reference = builder.build()
    config = parse_config({"models": {MODEL: {"reference": "unused.json"}}})
    engine = Engine(config, reference.models, ManualClock(0.0))
    alerts = []
    for i in range(0, len(live), 2000):
        alerts += engine.process_events(Stream.FEATURES, live[i : i + 2000]).alerts
    return alerts + engine.flush()


def test_a_heavy_tailed_stable_stream_raises_no_correlation_alert() -> None:
    alerts = _alerts(_events(150_000, 2, 1_700_100_000.0))
    assert [a for a in alerts if a.kind.value == "multivariate_drift"] == []


def test_a_correlation_flip_in_heavy_tails_is_still_found() -> None:
    live = _events(60_000, 3, 1_700_100_000.0, flip_at=20_000)
    flip_ts = live[20_000]["ts"]
    hits = [a for a in _alerts(live) if a.kind.value == "multivariate_drift" and a.status.value == "firing"]
    assert hits and min(a.event_ts for a in hits) - flip_ts < 2 * 300.0
