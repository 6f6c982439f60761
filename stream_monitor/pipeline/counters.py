"""Plain-number service statistics, written by the processing loop and read by the metrics exporter.

The processing thread updates a :class:`ServiceStats`; the Prometheus collector
(``adapters/prometheus/metrics.py``) reads :meth:`ServiceStats.snapshot` at scrape time, a deep copy taken
under a lock, so the scrape thread never touches live detector objects. Label sets are bounded: past
``max_series`` distinct label sets per family, new ones are counted in ``overflow`` and folded into one
``"__overflow__"`` series instead of growing without bound.

>>> s = ServiceStats(max_series=2)
>>> s.count_events("m", "features", "accepted", 10)
>>> s.count_dead_letter("not_json")
>>> snap = s.snapshot(); snap.events[("m", "features", "accepted")], snap.dead_letters["not_json"]
(10, 1)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar, cast

from stream_monitor.core.alerts import Alert, Severity
from stream_monitor.pipeline.lifecycle import Observation

OVERFLOW: Final = "__overflow__"
_K = TypeVar("_K", bound=tuple[str, ...])
# Seconds; event-to-processing latency spans milliseconds (live) to hours (a backlog being replayed).
LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)
BATCH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Histogram:
    """Cumulative-ready fixed-bucket histogram (Prometheus semantics: ``le`` upper bounds plus +Inf)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe_many(self, values: Iterable[float]) -> None:
        import bisect

        for v in values:
            self.counts[bisect.bisect_left(self.buckets, v)] += 1
            self.total += v
            self.n += 1

    def copy(self) -> Histogram:
        return Histogram(self.buckets, list(self.counts), self.total, self.n)

    def add_counts(self, counts: list[int], total: float) -> None:
        """Add pre-bucketed counts (len(buckets) + 1), e.g. from a numpy bincount over a whole batch."""
        for i, c in enumerate(counts):
            self.counts[i] += int(c)
        self.total += total
        self.n += int(sum(counts))


@dataclass
class StatsSnapshot:
    events: dict[tuple[str, str, str], int]  # (model, stream, outcome)
    dead_letters: dict[str, int]  # reason
    alerts: dict[tuple[str, str, str, str], int]  # (model, kind, severity, status)
    alert_delivery_failures: int
    drift_statistic: dict[tuple[str, str, str, str], float]  # (model, kind, signal, detector)
    drift_threshold: dict[tuple[str, str, str, str], float]
    drift_status: dict[tuple[str, str, str], int]  # (model, kind, signal) -> 0 ok, 1 warning, 2 critical
    window_fill: dict[str, float]  # model -> events in the open window / max_events
    windows_tested: dict[str, int]
    consumer_lag: dict[tuple[str, int], int]  # (topic, partition)
    latency: dict[str, Histogram]  # stream
    batch_seconds: dict[str, Histogram]  # stage
    agents_up: dict[str, bool]
    restoring: bool
    overflow: int
    labels: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> joiner figures
    slow_decoded: int = 0  # feature messages the typed decoder refused (decoded by the orjson path)


class ServiceStats:
    def __init__(self, max_series: int = 2000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._snap = StatsSnapshot({}, {}, {}, 0, {}, {}, {}, {}, {}, {}, {}, {}, {}, True, 0)

    # ---- writers (processing thread) -------------------------------------------------------------------------
    def _key(self, family: Mapping[_K, object], key: _K) -> _K:
        if key in family or len(family) < self.max_series:
            return key
        self._snap.overflow += 1
        return cast(_K, tuple(OVERFLOW for _ in key))

    def count_events(self, model: str, stream: str, outcome: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            fam = self._snap.events
            k = self._key(fam, (model, stream, outcome))
            fam[k] = fam.get(k, 0) + n

    def count_dead_letter(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._snap.dead_letters[reason] = self._snap.dead_letters.get(reason, 0) + n

    def count_slow_decoded(self, n: int) -> None:
        if n > 0:
            with self._lock:
                self._snap.slow_decoded += n

    def count_alerts(self, alerts: Iterable[Alert]) -> None:
        with self._lock:
            fam = self._snap.alerts
            for a in alerts:
                k = self._key(fam, (a.model_id, a.kind.value, a.severity.value, a.status.value))
                fam[k] = fam.get(k, 0) + 1

    def count_delivery_failure(self) -> None:
        with self._lock:
            self._snap.alert_delivery_failures += 1

    def record_observations(
        self, model: str, observations: Iterable[Observation], firing: dict[tuple[str, str], str]
    ) -> None:
        """Latest statistic per (kind, signal, detector) and status per (kind, signal) after a window test."""
        with self._lock:
            stat, thr, status = (
                self._snap.drift_statistic,
                self._snap.drift_threshold,
                self._snap.drift_status,
            )
            for o in observations:
                k = self._key(stat, (model, o.kind.value, o.signal, o.detector))
                stat[k] = o.statistic
                thr[k] = o.warning_threshold
                sk = self._key(status, (model, o.kind.value, o.signal))
                level = firing.get((o.kind.value, o.signal))
                status[sk] = 0 if level is None else (2 if level == Severity.CRITICAL.value else 1)

    def set_window(self, model: str, fill: float, tested: int) -> None:
        with self._lock:
            self._snap.window_fill[model] = fill
            self._snap.windows_tested[model] = tested

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        with self._lock:
            self._snap.consumer_lag[(topic, partition)] = lag

    def forget_lag(self, topic: str, partition: int) -> None:
        """A partition this worker no longer owns has no lag here (its owner reports it)."""
        with self._lock:
            self._snap.consumer_lag.pop((topic, partition), None)

    def observe_latency(self, stream: str, counts: list[int], total: float) -> None:
        with self._lock:
            h = self._snap.latency.setdefault(stream, Histogram(LATENCY_BUCKETS))
            h.add_counts(counts, total)

    def observe_batch(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._snap.batch_seconds.setdefault(stage, Histogram(BATCH_BUCKETS)).observe_many([seconds])

    def set_labels(self, model: str, figures: Mapping[str, float]) -> None:
        """The prediction/label join of a model: outstanding predictions, coverage, lag quantiles, evictions
        (``JoinerStats.as_dict()``)."""
        with self._lock:
            if model in self._snap.labels or len(self._snap.labels) < self.max_series:
                self._snap.labels[model] = dict(figures)
            else:
                self._snap.overflow += 1

    def set_agent(self, name: str, up: bool) -> None:
        with self._lock:
            self._snap.agents_up[name] = up

    def set_restoring(self, restoring: bool) -> None:
        with self._lock:
            self._snap.restoring = restoring

    # ---- reader (scrape thread) ------------------------------------------------------------------------------
    def snapshot(self) -> StatsSnapshot:
        """A copy of every family, taken under the lock.

        Keys and values are immutable (tuples of str, int, float, bool), so copying each dict and histogram
        is a full copy; it is far cheaper than ``copy.deepcopy`` (about 0.2 ms instead of 80 ms at 2,000
        series per family), and that is how long a scrape holds the writer up.
        """
        with self._lock:
            s = self._snap
            return StatsSnapshot(
                events=dict(s.events),
                dead_letters=dict(s.dead_letters),
                alerts=dict(s.alerts),
                alert_delivery_failures=s.alert_delivery_failures,
                drift_statistic=dict(s.drift_statistic),
                drift_threshold=dict(s.drift_threshold),
                drift_status=dict(s.drift_status),
                window_fill=dict(s.window_fill),
                windows_tested=dict(s.windows_tested),
                consumer_lag=dict(s.consumer_lag),
                latency={k: h.copy() for k, h in s.latency.items()},
                batch_seconds={k: h.copy() for k, h in s.batch_seconds.items()},
                agents_up=dict(s.agents_up),
                restoring=s.restoring,
                overflow=s.overflow,
                labels={k: dict(v) for k, v in s.labels.items()},
                slow_decoded=s.slow_decoded,
            )

    def ready(self) -> bool:
        """``/readyz``: every agent up and no state being restored."""
        with self._lock:
            return (
                not self._snap.restoring and bool(self._snap.agents_up) and all(self._snap.agents_up.values())
            )
