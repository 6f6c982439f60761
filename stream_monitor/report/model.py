"""The report's values: per model, its signals ranked by drift, their timelines and histograms, performance
and label health; the input streams and the dead letters. Frozen dataclasses, and nothing that reads a file.

:mod:`stream_monitor.report.build` makes them from records; :mod:`stream_monitor.report.render` draws them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

LEVELS: Final = {"ok": 0, "warning": 1, "critical": 2}


# ---- values ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatPoint:
    """One test of one window: the statistic against the thresholds it was compared with."""

    ts: float  # event time of the test
    statistic: float | None
    warning: float | None
    critical: float | None
    decision: str


@dataclass(frozen=True)
class AlertMark:
    """One alert event on a timeline."""

    ts: float
    status: str  # firing | resolved
    severity: str
    detector: str
    statistic: float | None
    threshold: float | None
    message: str


@dataclass(frozen=True)
class Timeline:
    """One detector's statistic over time for one signal, with the signal's alert events of that detector."""

    kind: str
    signal: str
    detector: str
    points: tuple[StatPoint, ...]
    alerts: tuple[AlertMark, ...]


@dataclass(frozen=True)
class Histogram:
    """The reference's shares against the window's, bin by bin (or category by category)."""

    signal: str
    detector: str
    severity: str
    window_start: float
    window_end: float
    window_values: int
    labels: tuple[str, ...]
    reference: tuple[float, ...]  # shares
    window: tuple[float, ...]  # shares
    complete: bool  # False: only the bins that moved most were recorded (an alert without window_counts)


@dataclass(frozen=True)
class SignalDrift:
    """How far one (kind, signal) drifted over the run, and what the report shows of it."""

    kind: str
    signal: str
    worst: str  # ok | warning | critical: the worst test decision or alert severity
    ratio: float  # largest statistic / critical threshold (warning threshold when a test has no critical)
    detector: str  # the detector of that ratio
    firing: int  # firing alert events
    first_alert: AlertMark | None
    timelines: tuple[Timeline, ...]
    histogram: Histogram | None


@dataclass(frozen=True)
class PerformancePoint:
    """A performance figure of one window (or of one error-stream observation) at its event time."""

    ts: float
    value: float
    coverage: float | None = None


@dataclass(frozen=True)
class Performance:
    """Accuracy (or MAE) and the label-free estimate over time, with label coverage; the error stream."""

    metric: str  # accuracy | mae
    realised: tuple[PerformancePoint, ...]
    estimated: tuple[PerformancePoint, ...]
    error_rate: tuple[PerformancePoint, ...]
    reference: float | None  # the reference's accuracy (or MAE)
    reference_estimate: float | None
    reference_error_rate: float | None

    @property
    def empty(self) -> bool:
        return not (self.realised or self.estimated or self.error_rate)


@dataclass(frozen=True)
class LagPoint:
    ts: float
    p50: float | None
    p95: float | None
    coverage: float | None


@dataclass(frozen=True)
class LabelLag:
    points: tuple[LagPoint, ...]
    sla_seconds: float | None
    min_coverage: float | None


@dataclass(frozen=True)
class StreamCounts:
    """Input lines of one stream; ``None`` where the records do not say."""

    stream: str
    lines: int | None
    accepted: int | None
    rejected: int


@dataclass(frozen=True)
class DeadLetterReason:
    stream: str
    reason: str
    count: int
    example: str  # the first one's detail, with its file and line when known


@dataclass(frozen=True)
class ModelReport:
    model_id: str
    accepted: Mapping[str, int] | None  # per stream, when known
    windows: int  # drift windows tested (distinct windows of its covariate / prediction records)
    alerts_by_kind: Mapping[tuple[str, str], int]  # (kind, severity) -> firing events
    resolved: int
    signals: tuple[SignalDrift, ...]  # most drifted first
    performance: Performance | None
    label_lag: LabelLag | None

    @property
    def alerted(self) -> tuple[SignalDrift, ...]:
        return tuple(s for s in self.signals if s.firing)


@dataclass(frozen=True)
class Report:
    models: tuple[ModelReport, ...]
    streams: tuple[StreamCounts, ...]
    dead_letters: tuple[DeadLetterReason, ...]
    stats_recorded: bool  # False: timelines hold alert events only (no window statistics given)
    sources: tuple[str, ...] = ()


# ---- dead letters -----------------------------------------------------------------------------------------------
@dataclass
class DeadLetterTally:
    """Dead letters counted by stream and reason, each with its first example; bounded by the reasons."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any]) -> None:
        """One replay dead-letter record (``stream``, ``reason``, ``detail``, ``file``, ``line``)."""
        key = (str(record.get("stream", "?")), str(record.get("reason", "?")))
        self.counts[key] += 1
        if key not in self.examples:
            where = f"{record['file']}:{record['line']}: " if "file" in record and "line" in record else ""
            self.examples[key] = f"{where}{record.get('detail', '')}"

    def add_count(self, stream: str, reason: str, n: int) -> None:
        """Counts without records (the service's metrics, a replay without --dead-letters-out)."""
        if n:
            self.counts[(stream, reason)] += n

    def reasons(self) -> tuple[DeadLetterReason, ...]:
        return tuple(
            DeadLetterReason(s, r, n, self.examples.get((s, r), ""))
            for (s, r), n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )

    def per_stream(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (stream, _), n in self.counts.items():
            out[stream] += n
        return out


# ---- reading records --------------------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None
