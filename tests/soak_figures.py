"""The soak run's figures, from the samples and stamps ``tests/soak_run.py`` collects: pure, so unit-tested
without a broker (``tests/unit/test_soak_figures.py``)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_monitor.core.alerts import Alert, Status


@dataclass
class Sample:
    at: float  # seconds since the run started
    rss: int
    threads: int


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest rank: a value that was measured.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99), percentile([], 99)
    (2.0, 4.0, nan)
    """
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(math.ceil(q / 100 * len(ranked)) - 1, 0)]


def memory_drift(samples: Sequence[Sample], warm_from: float, tail: int = 3) -> float:
    """Relative RSS growth from the first sample at or after ``warm_from`` (mean of it and the next
    ``tail - 1``) to the end (mean of the last ``tail``); NaN without enough samples.

    >>> s = [Sample(t, rss, 9) for t, rss in [(0, 50), (10, 100), (20, 100), (30, 100), (40, 104), (50, 106),
    ...                                       (60, 110)]]
    >>> round(memory_drift(s, warm_from=10), 3)
    0.067
    """
    warm = [s.rss for s in samples if s.at >= warm_from]
    if len(warm) < 2 * tail:
        return math.nan
    start = sum(warm[:tail]) / tail
    end = sum(warm[-tail:]) / tail
    return (end - start) / start


def alert_latencies(
    seen: Sequence[tuple[Alert, float]],
    stamps_ts: Sequence[float],
    stamps_wall: Sequence[float],
    lateness: float,
    status: Status | None = None,
) -> list[float]:
    """Seconds from producing the chunk holding the first event past each alert's window end plus
    ``lateness`` (the event that lets the window close) to reading the alert; alerts of ``status`` only if
    given. An alert whose closing event was never produced (a sentinel closed it) has no latency.

    >>> from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
    >>> a = Alert.build(model_id="m", kind=AlertKind.COVARIATE_DRIFT, signal="x", severity=Severity.WARNING,
    ...     status=Status.FIRING, detector="psi", statistic=0.3, threshold=0.2,
    ...     window=WindowInfo(0.0, 10.0, 100), episode_start_ts=10.0, detected_at=0.0, message="")
    >>> alert_latencies([(a, 105.5)], stamps_ts=[9.0, 10.5, 11.5], stamps_wall=[100.0, 101.0, 102.0],
    ...                 lateness=1.0)
    [3.5]
    """
    out = []
    for alert, read_at in seen:
        if status is not None and alert.status is not status:
            continue
        i = bisect.bisect_left(stamps_ts, alert.window.end_ts + lateness)
        if i < len(stamps_wall):
            out.append(read_at - stamps_wall[i])
    return out


@dataclass
class SoakResult:
    figures: dict[str, Any]
    failures: list[str] = field(default_factory=list)


def judge(figures: dict[str, Any]) -> list[str]:
    """What the figures say is wrong, against issue 13's bounds; empty when every bound holds."""
    bounds = [
        ("memory drift after warm-up", figures["memory_drift_max"], 0.10),
        ("p99 event-to-alert latency (s)", figures["latency_p99_s"], 5.0),
    ]
    out = [
        f"{name} {value} not under {bound}"
        for name, value, bound in bounds
        if value is None or value >= bound
    ]
    if figures["threads_after_warmup"][0] != figures["threads_after_warmup"][1]:
        out.append(f"thread count moved after warm-up: {figures['threads_after_warmup']}")
    if figures["state_keys"] > figures["state_keys_bound"]:
        out.append(f"{figures['state_keys']} state keys, more than {figures['state_keys_bound']} partitions")
    if figures["lost_events"] or figures["extra_events"] or figures["windows_missing"]:
        out.append("events lost or counted twice")
    return out


def finite(value: float, digits: int) -> float | None:
    """``value`` rounded, or None where it could not be measured (JSON has no NaN)."""
    return round(value, digits) if math.isfinite(value) else None
