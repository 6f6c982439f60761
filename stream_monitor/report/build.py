"""The report's data, built from records: alerts (``stream-monitor.alert/v1``), window statistics
(``stream-monitor.window-stats/v1``), dead letters and the reference profiles. Pure: records in, values out.

Per model: a summary (events per stream, alert events by kind and severity, the first alert of each signal),
every signal ranked by how far it drifted (worst level reached, then the largest ratio of a statistic to its
critical threshold), each signal's timeline, the reference-vs-window histogram of every signal that alerted,
performance and label health over time. The values are :mod:`stream_monitor.report.model`'s; the histograms
come from :mod:`stream_monitor.report.histograms`, performance and labels from
:mod:`stream_monitor.report.performance_series`.

>>> stats = [{"model_id": "m", "kind": "covariate_drift", "signal": s, "detector": "psi", "statistic": v,
...           "warning_threshold": 0.1, "critical_threshold": 0.25, "decision": d, "event_ts": 60.0,
...           "window": {"start_ts": 0.0, "end_ts": 60.0, "events": 500}, "details": {}}
...          for s, v, d in (("quiet", 0.02, "ok"), ("moved", 0.3, "critical"), ("near", 0.2, "warning"))]
>>> report = build_report(alerts=[], stats=stats, profiles={})
>>> [(s.signal, s.worst, round(s.ratio, 2)) for s in report.models[0].signals]
[('moved', 'critical', 1.2), ('near', 'warning', 0.8), ('quiet', 'ok', 0.08)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from stream_monitor.core.alerts import AlertKind
from stream_monitor.report.histograms import _histogram
from stream_monitor.report.model import (
    LEVELS,
    AlertMark,
    DeadLetterTally,
    ModelReport,
    Report,
    SignalDrift,
    StatPoint,
    StreamCounts,
    Timeline,
    _num,
)
from stream_monitor.report.performance_series import _label_lag, _performance
from stream_monitor.stats.profiles import ModelProfile

# A threshold this small marks an indicator test (something vanished, labels late): its ratio says nothing.
INDICATOR_THRESHOLD: Final = 1e-6
MAX_TIMELINES_PER_SIGNAL: Final = 3


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
