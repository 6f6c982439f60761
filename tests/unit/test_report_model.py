"""The report's data model, from records: signals ranked by drift, the summary counts, timelines from window
statistics, histograms of the window that fired, performance and label series, dead letters."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_monitor.report.build import build_report, drift_ratio
from stream_monitor.report.model import DeadLetterTally
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile

T0 = 1763766000.0


def stat(
    signal: str,
    statistic: float,
    end: float,
    *,
    kind: str = "covariate_drift",
    detector: str = "psi",
    warning: float = 0.1,
    critical: float | None = 0.25,
    decision: str | None = None,
    model: str = "m",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if decision is None:
        crit = critical if critical is not None else float("inf")
        decision = "critical" if statistic >= crit else "warning" if statistic >= warning else "ok"
    return {
        "schema": "stream-monitor.window-stats/v1",
        "model_id": model,
        "kind": kind,
        "signal": signal,
        "detector": detector,
        "statistic": statistic,
        "warning_threshold": warning,
        "critical_threshold": critical,
        "p_value": None,
        "decision": decision,
        "window": {"start_ts": end - 300.0, "end_ts": end, "events": 1000},
        "event_ts": end,
        "details": details or {},
    }


def alert(
    signal: str,
    end: float,
    severity: str = "critical",
    status: str = "firing",
    *,
    kind: str = "covariate_drift",
    detector: str = "psi",
    statistic: float = 0.4,
    threshold: float = 0.25,
    details: dict[str, Any] | None = None,
    model: str = "m",
) -> dict[str, Any]:
    return {
        "schema": "stream-monitor.alert/v1",
        "alert_id": f"id-{signal}",
        "model_id": model,
        "kind": kind,
        "signal": signal,
        "severity": severity,
        "status": status,
        "detector": detector,
        "statistic": statistic,
        "threshold": threshold,
        "p_value": None,
        "window": {"start_ts": end - 300.0, "end_ts": end, "events": 1000},
        "event_ts": end,
        "detected_at": end + 1,
        "details": details or {},
        "message": f"{signal} shifted",
    }


def profile() -> ModelProfile:
    num = NumericProfile(
        count=1000,
        nulls=0,
        edges=np.array([-1.0, 0.0, 1.0]),
        counts=np.array([250, 250, 250, 250]),
        mean=0.0,
        std=1.0,
        min=-3.0,
        max=3.0,
    )
    cat = CategoricalProfile(
        count=1000, nulls=0, categories=("a", "b"), counts=np.array([600, 400, 0]), distinct=2
    )
    return ModelProfile("m", 1000, T0 - 3600, T0, {"x": num, "y": num, "c": cat})


def test_signals_are_sorted_by_how_far_they_drifted() -> None:
    stats = []
    for k in range(4):
        end = T0 + 300 * (k + 1)
        stats += [
            stat("x", [0.02, 0.05, 0.3, 0.6][k], end),  # critical, 2.4 x its critical threshold
            stat("y", [0.02, 0.12, 0.2, 0.05][k], end),  # warning
            stat("c", [0.01, 0.02, 0.03, 0.02][k], end),  # quiet
            stat("y", 0.3, end, detector="null_rate", kind="data_quality", critical=None, decision="ok"),
        ]
    m = build_report([], stats, {"m": profile()}).models[0]
    assert [(s.signal, s.worst) for s in m.signals] == [("x", "critical"), ("y", "warning"), ("c", "ok")]
    assert round(m.signals[0].ratio, 6) == 2.4 and m.signals[0].detector == "psi"
    assert round(m.signals[2].ratio, 6) == round(0.03 / 0.25, 6)
    # y's null-rate test went 3x past its warning threshold (it has no critical) but stayed not significant:
    # the warning psi leads y, and only tests that reached a level get a timeline
    y = m.signals[1]
    assert (y.kind, y.detector) == ("covariate_drift", "psi") and [t.detector for t in y.timelines] == ["psi"]


def test_a_critical_signal_outranks_a_warning_one_whatever_the_ratios() -> None:
    stats = [
        stat("x", 0.26, T0, warning=0.1, critical=0.25),  # critical, ratio 1.04
        stat("y", 0.24, T0, warning=0.01, critical=0.3, decision="warning"),  # warning, ratio 0.8
        stat("z", 50.0, T0, kind="covariate_drift", detector="cusum", warning=100.0, critical=None),  # ok
    ]
    assert [s.signal for s in build_report([], stats, {}).models[0].signals] == ["x", "y", "z"]


def test_indicator_tests_count_as_one_when_they_fire() -> None:
    assert drift_ratio(0.3, 1e-12, None, "warning") == 1.0
    assert drift_ratio(0.0, 1e-9, None, "ok") == 0.0
    assert drift_ratio(None, 0.1, 0.25, "ok") == 0.0


def test_summary_counts_alerts_by_kind_and_severity_and_the_first_alert_per_signal() -> None:
    alerts = [
        alert("x", T0 + 300, "warning", statistic=0.12, threshold=0.1),
        alert("x", T0 + 600, "critical"),
        alert("x", T0 + 1500, "critical", "resolved", statistic=0.01, threshold=0.1),
        alert("score", T0 + 900, "warning", kind="prediction_drift", statistic=0.15, threshold=0.1),
        alert("other-model", T0, model="n"),
    ]
    report = build_report(alerts, [], {"m": profile()}, accepted={"m": {"features": 5000}})
    m = next(m for m in report.models if m.model_id == "m")
    assert m.alerts_by_kind == {
        ("covariate_drift", "critical"): 1,
        ("covariate_drift", "warning"): 1,
        ("prediction_drift", "warning"): 1,
    }
    assert m.resolved == 1 and m.accepted == {"features": 5000}
    x = next(s for s in m.signals if s.signal == "x")
    assert x.firing == 2 and x.first_alert is not None and x.first_alert.ts == T0 + 300
    assert x.first_alert.severity == "warning"
    assert [s.signal for s in m.alerted] == ["x", "score"]
    # a model that is only in the records gets its own part; without window statistics the page says so
    assert [m.model_id for m in report.models] == ["m", "n"] and not report.stats_recorded


def test_a_model_without_alerts_gets_its_summary_and_timelines() -> None:
    stats = [stat(s, 0.02, T0 + 300 * k) for k in range(1, 4) for s in ("x", "y")]
    m = build_report([], stats, {"m": profile()}).models[0]
    assert not m.alerted and m.windows == 3 and m.alerts_by_kind == {}
    assert all(len(s.timelines) == 1 and len(s.timelines[0].points) == 3 for s in m.signals)
    assert all(s.histogram is None for s in m.signals)


def test_timeline_series_come_from_the_stats_records_in_event_time_order() -> None:
    stats = [
        stat("x", 0.3, T0 + 900, warning=0.11, critical=0.27),
        stat("x", 0.05, T0 + 300, warning=0.12, critical=0.3),
        stat("x", 0.12, T0 + 600, warning=0.115, critical=0.28),
        stat(
            "x", 1.0, T0 + 900, detector="cusum", warning=5.0, critical=None
        ),  # another test, its own series
    ]
    alerts = [
        alert("x", T0 + 600, "warning", statistic=0.12, threshold=0.115),
        alert("x", T0 + 900, "critical", statistic=0.3, threshold=0.27),
    ]
    x = build_report(alerts, stats, {"m": profile()}).models[0].signals[0]
    psi = x.timelines[0]
    assert psi.detector == "psi" and [t.detector for t in x.timelines] == ["psi"]  # cusum stayed quiet
    assert [p.ts for p in psi.points] == [T0 + 300, T0 + 600, T0 + 900]
    assert [p.statistic for p in psi.points] == [0.05, 0.12, 0.3]
    assert [(p.warning, p.critical) for p in psi.points] == [(0.12, 0.3), (0.115, 0.28), (0.11, 0.27)]
    assert [p.decision for p in psi.points] == ["ok", "warning", "critical"]
    assert [(a.ts, a.severity) for a in psi.alerts] == [(T0 + 600, "warning"), (T0 + 900, "critical")]


def test_the_histogram_is_the_firing_windows_against_the_reference() -> None:
    counts = [100, 100, 300, 500]
    alerts = [
        alert("x", T0 + 300, "warning", statistic=0.12, threshold=0.1),
        alert("x", T0 + 600, "critical", details={"window_counts": counts, "top_bins": []}),
    ]
    h = build_report(alerts, [], {"m": profile()}).models[0].signals[0].histogram
    assert h is not None and h.complete and h.severity == "critical" and h.window_end == T0 + 600
    assert h.labels == ("< -1", "-1 – 0", "0 – 1", "≥ 1")
    assert h.reference == (0.25, 0.25, 0.25, 0.25) and h.window == (0.1, 0.1, 0.3, 0.5)
    assert h.window_values == 1000


def test_the_histogram_of_a_signal_another_test_spoke_for_comes_from_its_distance_record() -> None:
    """A cusum or null-rate alert carries no histogram: the same window's distance-test record has it."""
    stats = [stat("c", 0.05, T0 + 300, details={"window_counts": [30, 50, 20]})]
    alerts = [alert("c", T0 + 300, "warning", detector="new_category", statistic=0.2, threshold=0.01)]
    h = build_report(alerts, stats, {"m": profile()}).models[0].signals[0].histogram
    assert h is not None and h.complete and h.detector == "psi"
    assert (
        h.labels == ("a", "b", "(other)") and h.reference == (0.6, 0.4, 0.0) and h.window == (0.3, 0.5, 0.2)
    )


def test_an_alert_without_window_counts_shows_the_bins_it_recorded() -> None:
    top = [
        {"range": [1.0, None], "reference_share": 0.25, "live_share": 0.5},
        {"range": [None, -1.0], "reference_share": 0.25, "live_share": 0.1},
    ]
    alerts = [alert("x", T0 + 300, details={"top_bins": top, "window_values": 900})]
    h = build_report(alerts, [], {"m": profile()}).models[0].signals[0].histogram
    assert h is not None and not h.complete and h.labels == ("≥ 1", "< -1") and h.window == (0.5, 0.1)


def test_performance_and_label_series() -> None:
    stats = [
        stat(
            "performance",
            0.01,
            T0 + 600,
            kind="concept_drift",
            detector="accuracy_drop",
            warning=0.02,
            critical=None,
            details={"metrics": {"accuracy": 0.79}, "label_coverage": 0.8, "reference": {"accuracy": 0.8}},
        ),
        stat(
            "estimated_performance",
            0.0,
            T0 + 600,
            kind="concept_drift",
            detector="cbpe",
            warning=0.02,
            critical=None,
            details={"expected": {"expected_accuracy": 0.81}, "reference_estimate": 0.805},
        ),
        stat(
            "labels",
            0.0,
            T0 + 600,
            kind="label_lag",
            detector="label_coverage",
            warning=1e-9,
            critical=None,
            details={
                "lag_p50_seconds": 20.0,
                "lag_p95_seconds": 80.0,
                "label_coverage": 0.9,
                "sla_seconds": 3600.0,
                "min_coverage": 0.5,
            },
        ),
    ]
    m = build_report([], stats, {"m": profile()}).models[0]
    perf = m.performance
    assert perf is not None and perf.metric == "accuracy" and perf.reference == 0.8
    assert [(p.ts, p.value, p.coverage) for p in perf.realised] == [(T0 + 600, 0.79, 0.8)]
    assert [p.value for p in perf.estimated] == [0.81] and perf.reference_estimate == 0.805
    lag = m.label_lag
    assert lag is not None and lag.sla_seconds == 3600.0 and lag.min_coverage == 0.5
    assert [(p.p50, p.p95, p.coverage) for p in lag.points] == [(20.0, 80.0, 0.9)]


def test_dead_letters_are_counted_by_stream_and_reason_with_a_first_example() -> None:
    tally = DeadLetterTally()
    for line, reason in ((3, "not_json"), (9, "not_json"), (4, "bad_timestamp")):
        tally.add(
            {"stream": "features", "file": "f.jsonl", "line": line, "reason": reason, "detail": f"d{line}"}
        )
    tally.add_count("labels", "missing_field", 2)
    report = build_report([], [], {}, tally, streams=[("features", 100, 97)])
    assert [(d.stream, d.reason, d.count, d.example) for d in report.dead_letters] == [
        ("features", "not_json", 2, "f.jsonl:3: d3"),
        ("labels", "missing_field", 2, ""),
        ("features", "bad_timestamp", 1, "f.jsonl:4: d4"),
    ]
    assert [(s.stream, s.lines, s.accepted, s.rejected) for s in report.streams] == [
        ("features", 100, 97, 3),
        ("labels", None, None, 2),
    ]
