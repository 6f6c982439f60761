"""Performance and label health over time, read from a model's concept-drift and label-lag records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from stream_monitor.core.alerts import AlertKind
from stream_monitor.report.model import LabelLag, LagPoint, Performance, PerformancePoint, _num
from stream_monitor.stats.profiles import ModelProfile

_PERFORMANCE_WINDOW_DETECTORS: Final = ("accuracy_drop", "mae_increase")


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
