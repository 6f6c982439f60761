"""The report's data, built from records: alerts (``stream-monitor.alert/v1``), window statistics
(``stream-monitor.window-stats/v1``), dead letters and the reference profiles. Pure: records in, values out.

Per model: a summary (events per stream, alert events by kind and severity, the first alert of each signal),
every signal ranked by how far it drifted (worst level reached, then the largest ratio of a statistic to its
critical threshold), each signal's timeline, the reference-vs-window histogram of every signal that alerted,
performance and label health over time.

>>> stats = [{"model_id": "m", "kind": "covariate_drift", "signal": s, "detector": "psi", "statistic": v,
...           "warning_threshold": 0.1, "critical_threshold": 0.25, "decision": d, "event_ts": 60.0,
...           "window": {"start_ts": 0.0, "end_ts": 60.0, "events": 500}, "details": {}}
...          for s, v, d in (("quiet", 0.02, "ok"), ("moved", 0.3, "critical"), ("near", 0.2, "warning"))]
>>> report = build_report(alerts=[], stats=stats, profiles={})
>>> [(s.signal, s.worst, round(s.ratio, 2)) for s in report.models[0].signals]
[('moved', 'critical', 1.2), ('near', 'warning', 0.8), ('quiet', 'ok', 0.08)]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

from stream_monitor.core.alerts import AlertKind
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile

LEVELS: Final = {"ok": 0, "warning": 1, "critical": 2}
# A threshold this small marks an indicator test (something vanished, labels late): its ratio says nothing.
INDICATOR_THRESHOLD: Final = 1e-6
MAX_TIMELINES_PER_SIGNAL: Final = 3
MAX_CATEGORIES: Final = 24  # a categorical histogram shows the categories that weigh most, then the rest
# Signals that are not one distribution: no histogram.
_NO_HISTOGRAM_KINDS: Final = {AlertKind.CONCEPT_DRIFT.value, AlertKind.LABEL_LAG.value}
_PERFORMANCE_WINDOW_DETECTORS: Final = ("accuracy_drop", "mae_increase")


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
    stats_recorded: bool  # False: timelines hold alert events only (the service writes no window statistics)
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


# ---- building ---------------------------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def drift_ratio(
    statistic: float | None, warning: float | None, critical: float | None, decision: str
) -> float:
    """How far a statistic went, in units of its critical threshold (its warning threshold for a test with no
    critical level); an indicator test (threshold ~0) counts 1 when it reached a level, else 0.

    >>> drift_ratio(0.5, 0.1, 0.25, "critical"), drift_ratio(0.05, 0.1, None, "ok")
    (2.0, 0.5)
    >>> drift_ratio(0.3, 1e-12, None, "warning")
    1.0
    """
    if statistic is None:
        return 0.0
    threshold = critical if critical is not None and critical > INDICATOR_THRESHOLD else warning
    if threshold is None or threshold <= INDICATOR_THRESHOLD:
        return 1.0 if LEVELS.get(decision, 0) else 0.0
    return max(statistic / threshold, 0.0)


def _mark(alert: Mapping[str, Any]) -> AlertMark:
    return AlertMark(
        float(alert["event_ts"]),
        str(alert["status"]),
        str(alert["severity"]),
        str(alert["detector"]),
        _num(alert.get("statistic")),
        _num(alert.get("threshold")),
        str(alert.get("message", "")),
    )


def _point(record: Mapping[str, Any]) -> StatPoint:
    return StatPoint(
        float(record["event_ts"]),
        _num(record.get("statistic")),
        _num(record.get("warning_threshold")),
        _num(record.get("critical_threshold")),
        str(record.get("decision", "ok")),
    )


def build_report(
    alerts: Iterable[Mapping[str, Any]],
    stats: Iterable[Mapping[str, Any]],
    profiles: Mapping[str, ModelProfile],
    dead_letters: DeadLetterTally | None = None,
    streams: Sequence[tuple[str, int | None, int | None]] = (),
    accepted: Mapping[str, Mapping[str, int]] | None = None,
    sources: Sequence[str] = (),
    stats_recorded: bool | None = None,
) -> Report:
    """The report of a run.

    ``alerts`` and ``stats`` are decoded records; ``profiles`` the reference profile of each model (the
    report's models are these and any other model a record names); ``streams`` gives ``(stream, lines,
    accepted)`` per input stream where known, ``accepted`` the accepted events per model and stream.
    """
    by_model_alerts: dict[str, list[Mapping[str, Any]]] = {}
    by_model_stats: dict[str, list[Mapping[str, Any]]] = {}
    for a in alerts:
        by_model_alerts.setdefault(str(a["model_id"]), []).append(a)
    n_stats = 0
    for r in stats:
        n_stats += 1
        by_model_stats.setdefault(str(r["model_id"]), []).append(r)
    tally = dead_letters or DeadLetterTally()
    rejected = tally.per_stream()
    stream_rows = tuple(StreamCounts(s, lines, acc, rejected.get(s, 0)) for s, lines, acc in streams)
    known = {row.stream for row in stream_rows}
    stream_rows += tuple(
        StreamCounts(s, None, None, n) for s, n in sorted(rejected.items()) if s not in known
    )
    model_ids = list(profiles) + sorted((set(by_model_alerts) | set(by_model_stats)) - set(profiles))
    models = tuple(
        build_model(
            mid,
            by_model_alerts.get(mid, []),
            by_model_stats.get(mid, []),
            profiles.get(mid),
            None if accepted is None else accepted.get(mid, {}),
        )
        for mid in model_ids
    )
    return Report(
        models,
        stream_rows,
        tally.reasons(),
        n_stats > 0 if stats_recorded is None else stats_recorded,
        tuple(sources),
    )


def build_model(
    model_id: str,
    alerts: Sequence[Mapping[str, Any]],
    stats: Sequence[Mapping[str, Any]],
    profile: ModelProfile | None,
    accepted: Mapping[str, int] | None = None,
) -> ModelReport:
    """One model's part of the report (its own alerts and records only)."""
    alerts = sorted(alerts, key=lambda a: float(a["event_ts"]))
    stats = sorted(stats, key=lambda r: float(r["event_ts"]))
    # one entry per signal name, whatever the kinds of its tests (num_00: covariate drift, data quality, schema)
    names: dict[str, None] = {}
    records: dict[str, dict[tuple[str, str], list[Mapping[str, Any]]]] = {}
    for r in stats:
        names.setdefault(str(r["signal"]))
        tests = records.setdefault(str(r["signal"]), {})
        tests.setdefault((str(r["kind"]), str(r["detector"])), []).append(r)
    events: dict[str, list[Mapping[str, Any]]] = {}
    for a in alerts:
        names.setdefault(str(a["signal"]))
        events.setdefault(str(a["signal"]), []).append(a)
    signals = [_signal(name, records.get(name, {}), events.get(name, []), profile) for name in names]
    signals.sort(key=lambda s: (-LEVELS[s.worst], -s.ratio, s.kind, s.signal))
    by_kind: Counter[tuple[str, str]] = Counter(
        (str(a["kind"]), str(a["severity"])) for a in alerts if a["status"] == "firing"
    )
    windows = {
        (float(r["window"]["start_ts"]), float(r["window"]["end_ts"]))
        for r in stats
        if r["kind"] in (AlertKind.COVARIATE_DRIFT.value, AlertKind.PREDICTION_DRIFT.value)
    }
    return ModelReport(
        model_id,
        accepted,
        len(windows),
        dict(sorted(by_kind.items())),
        sum(1 for a in alerts if a["status"] == "resolved"),
        tuple(signals),
        _performance(stats, profile),
        _label_lag(stats),
    )


def _signal(
    signal: str,
    tests: Mapping[tuple[str, str], list[Mapping[str, Any]]],
    alerts: Sequence[Mapping[str, Any]],
    profile: ModelProfile | None,
) -> SignalDrift:
    best: dict[tuple[str, str], tuple[int, float]] = {}  # (kind, detector) -> (worst level, largest ratio)
    for test, recs in tests.items():
        level, ratio = 0, 0.0
        for r in recs:
            d = str(r.get("decision", "ok"))
            level = max(level, LEVELS.get(d, 0))
            ratio = max(
                ratio,
                drift_ratio(
                    _num(r.get("statistic")),
                    _num(r.get("warning_threshold")),
                    _num(r.get("critical_threshold")),
                    d,
                ),
            )
        best[test] = (level, ratio)
    for (
        a
    ) in alerts:  # alerts count too: with no window statistics (the service's alerts) they are all there is
        if a["status"] != "firing":
            continue
        test = (str(a["kind"]), str(a["detector"]))
        level = LEVELS.get(str(a["severity"]), 0)
        critical = _num(((a.get("details") or {}).get("thresholds") or {}).get("critical"))
        if critical is None and a["severity"] == "critical":
            critical = _num(a.get("threshold"))
        warning = _num(a.get("threshold")) if a["severity"] == "warning" else None
        ratio = drift_ratio(_num(a.get("statistic")), warning, critical, str(a["severity"]))
        old = best.get(test, (0, 0.0))
        best[test] = (max(old[0], level), max(old[1], ratio))
    top = max((level for level, _ in best.values()), default=0)
    worst = next(name for name, rank in LEVELS.items() if rank == top)
    ranked = sorted(best, key=lambda t: (-best[t][0], -best[t][1], t))
    lead = ranked[0] if ranked else ("", "")
    firing = [a for a in alerts if a["status"] == "firing"]
    alerted = {(str(a["kind"]), str(a["detector"])) for a in alerts}
    shown = [t for t in ranked if t == lead or best[t][0] > 0 or t in alerted][:MAX_TIMELINES_PER_SIGNAL]

    def marks(test: tuple[str, str]) -> tuple[AlertMark, ...]:
        # an alert event marks its own test's timeline, or the first one when that is not shown
        return tuple(
            _mark(a)
            for a in alerts
            if (own := (str(a["kind"]), str(a["detector"]))) == test
            or (test == shown[0] and own not in shown)
        )

    timelines = tuple(
        Timeline(t[0], signal, t[1], tuple(_point(r) for r in tests.get(t, [])), marks(t)) for t in shown
    )
    histogram = _histogram(signal, firing, tests, profile) if firing else None
    return SignalDrift(
        lead[0],
        signal,
        worst,
        best[lead][1] if ranked else 0.0,
        lead[1],
        len(firing),
        _mark(firing[0]) if firing else None,
        timelines,
        histogram,
    )


# ---- histograms ---------------------------------------------------------------------------------------------------
def signal_profile(
    kind: str, signal: str, profile: ModelProfile | None
) -> NumericProfile | CategoricalProfile | None:
    """The reference distribution a signal is tested against, if it is one distribution."""
    if profile is None or kind in _NO_HISTOGRAM_KINDS:
        return None
    if kind == AlertKind.PREDICTION_DRIFT.value and profile.predictions is not None:
        return profile.predictions.score if signal == "score" else profile.predictions.prediction
    return profile.features.get(signal)


def bin_labels(ref: NumericProfile | CategoricalProfile) -> tuple[str, ...]:
    """A label per reference bin: ranges with open tails (numeric), categories then ``(other)``.

    >>> import numpy as np
    >>> p = NumericProfile(10, 0, np.array([1.0, 2.5]), np.array([3, 4, 3]), 2.0, 1.0, 0.0, 4.0)
    >>> bin_labels(p)
    ('< 1', '1 – 2.5', '≥ 2.5')
    """
    if isinstance(ref, NumericProfile):
        e = [f"{x:.4g}" for x in ref.edges]
        if not e:
            return ("all",)
        return (f"< {e[0]}", *(f"{a} – {b}" for a, b in pairwise(e)), f"≥ {e[-1]}")
    return (*(str(c) for c in ref.categories), "(other)")


def _shares(counts: Sequence[float]) -> tuple[float, ...]:
    total = float(sum(counts))
    return tuple(float(c) / total if total > 0 else 0.0 for c in counts)


def _histogram(
    signal: str,
    firing: Sequence[Mapping[str, Any]],
    tests: Mapping[tuple[str, str], list[Mapping[str, Any]]],
    profile: ModelProfile | None,
) -> Histogram | None:
    """The histogram of the window that fired: the first firing event at the worst severity among the
    signal's alerts of a distribution (not performance or labels)."""
    firing = [a for a in firing if a["kind"] not in _NO_HISTOGRAM_KINDS]
    if not firing:
        return None
    top = max(LEVELS.get(str(a["severity"]), 0) for a in firing)
    alert = next(a for a in firing if LEVELS.get(str(a["severity"]), 0) == top)
    ref = signal_profile(str(alert["kind"]), signal, profile)
    details = alert.get("details") or {}
    end = float(alert["window"]["end_ts"])
    counts = details.get("window_counts")
    detector = str(alert["detector"])
    if (
        counts is None
    ):  # another test spoke for the signal: its distance test of that window has the histogram
        for (_, det), recs in tests.items():
            for r in recs:
                rc = (r.get("details") or {}).get("window_counts")
                if rc is not None and abs(float(r["window"]["end_ts"]) - end) < 1e-6:
                    counts, detector = rc, det
                    break
            if counts is not None:
                break
    start = float(alert["window"]["start_ts"])
    severity = str(alert["severity"])
    if ref is not None and counts is not None and len(counts) == len(ref.counts):
        labels = bin_labels(ref)
        reference = _shares([float(c) for c in ref.counts])
        window = _shares([float(c) for c in counts])
        if isinstance(ref, CategoricalProfile) and len(labels) > MAX_CATEGORIES + 1:
            labels, reference, window = _fold_categories(labels, reference, window)
        return Histogram(
            signal, detector, severity, start, end, int(sum(counts)), labels, reference, window, True
        )
    top_bins = details.get("top_bins")
    if not top_bins:
        return None
    labels_t, ref_t, win_t = [], [], []
    for b in top_bins:
        if "category" in b:
            labels_t.append(str(b["category"]))
        else:
            lo, hi = b["range"]
            labels_t.append(
                f"< {hi:.4g}" if lo is None else f"≥ {lo:.4g}" if hi is None else f"{lo:.4g} – {hi:.4g}"
            )
        ref_t.append(float(b["reference_share"]))
        win_t.append(float(b["live_share"]))
    values = int(details.get("window_values", 0) or 0)
    return Histogram(
        signal, detector, severity, start, end, values, tuple(labels_t), tuple(ref_t), tuple(win_t), False
    )


def _fold_categories(
    labels: tuple[str, ...], reference: tuple[float, ...], window: tuple[float, ...]
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """The categories that weigh most in either distribution (in the reference's order), the rest summed."""
    body = range(len(labels) - 1)  # the last slot is "(other)"
    keep = set(sorted(body, key=lambda k: -max(reference[k], window[k]))[:MAX_CATEGORIES])
    rest = [k for k in body if k not in keep]
    idx = [k for k in body if k in keep]
    return (
        (*(labels[k] for k in idx), f"({len(rest)} more)", labels[-1]),
        (*(reference[k] for k in idx), sum(reference[k] for k in rest), reference[-1]),
        (*(window[k] for k in idx), sum(window[k] for k in rest), window[-1]),
    )


# ---- performance and labels -------------------------------------------------------------------------------------
def _performance(stats: Sequence[Mapping[str, Any]], profile: ModelProfile | None) -> Performance | None:
    concept = [r for r in stats if r["kind"] == AlertKind.CONCEPT_DRIFT.value]
    if not concept and (profile is None or profile.labels is None):
        return None
    metric = "mae" if any(r["detector"] == "mae_increase" for r in concept) else "accuracy"
    realised: list[PerformancePoint] = []
    estimated: list[PerformancePoint] = []
    errors: list[PerformancePoint] = []
    reference = reference_estimate = reference_error = None
    if profile is not None and profile.labels is not None:
        reference = _num(profile.labels.performance.get(metric))
    for r in concept:
        d = r.get("details") or {}
        end = float(r["window"]["end_ts"])
        coverage = _num(d.get("label_coverage"))
        if r["detector"] in _PERFORMANCE_WINDOW_DETECTORS and r["signal"] == "performance":
            v = _num((d.get("metrics") or {}).get(metric))
            if v is not None:
                realised.append(PerformancePoint(end, v, coverage))
            reference = _num((d.get("reference") or {}).get(metric)) or reference
        elif r["detector"] == "cbpe":
            v = _num((d.get("expected") or {}).get("expected_accuracy"))
            if v is not None:
                estimated.append(PerformancePoint(end, v))
            reference_estimate = _num(d.get("reference_estimate")) or reference_estimate
        elif r["signal"] == "performance" and "error_rate" in d:
            v = _num(d.get("error_rate"))
            if v is not None:
                errors.append(PerformancePoint(float(r["event_ts"]), v, coverage))
            reference_error = _num(d.get("reference_error_rate")) or reference_error
    perf = Performance(
        metric,
        tuple(sorted(realised, key=lambda p: p.ts)),
        tuple(sorted(estimated, key=lambda p: p.ts)),
        tuple(errors),
        reference,
        reference_estimate,
        reference_error,
    )
    return None if perf.empty else perf


def _label_lag(stats: Sequence[Mapping[str, Any]]) -> LabelLag | None:
    recs = [r for r in stats if r["kind"] == AlertKind.LABEL_LAG.value]
    if not recs:
        return None
    points = []
    sla = cov = None
    for r in recs:
        d = r.get("details") or {}
        points.append(
            LagPoint(
                float(r["window"]["end_ts"]),
                _num(d.get("lag_p50_seconds")),
                _num(d.get("lag_p95_seconds")),
                _num(d.get("label_coverage")),
            )
        )
        sla = _num(d.get("sla_seconds")) or sla
        cov = _num(d.get("min_coverage")) or cov
    return LabelLag(tuple(sorted(points, key=lambda p: p.ts)), sla, cov)
