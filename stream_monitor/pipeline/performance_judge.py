"""The performance tests of one model: the windowed accuracy (or MAE) test, the label-free estimate (CBPE),
segments, and label health, each turning a window's :class:`PerformanceBucket` into observations.

A drop only counts when it is both larger than the configured margin (2% warning, 5% critical by default) and
statistically distinguishable given the labelled count and the reference's, at the test's false-alarm rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.alerts import AlertKind, Severity
from stream_monitor.pipeline.join_results import JoinerStats
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.stats.performance import PerformanceSketch, Task

__all__ = ["ESTIMATE_SIGNAL", "LABELS_SIGNAL", "PERFORMANCE_SIGNAL", "PerformanceBucket", "PerformanceJudge"]

PERFORMANCE_SIGNAL: Final = "performance"
ESTIMATE_SIGNAL: Final = "estimated_performance"
LABELS_SIGNAL: Final = "labels"


@dataclass
class PerformanceBucket:
    """One window's (or label-health bucket's) performance sketch and segment tallies; mergeable."""

    sketch: PerformanceSketch
    estimated: bool = False
    lag_checked: bool = False
    unknown_labels: int = 0
    # per segment feature: labelled pairs and errors per value (reference categories, other, missing)
    seg_labelled: list[NDArray[np.int64]] = field(default_factory=list)
    seg_errors: list[NDArray[np.int64]] = field(default_factory=list)

    def __iadd__(self, other: PerformanceBucket) -> PerformanceBucket:
        self.sketch.merge(other.sketch)
        self.unknown_labels += other.unknown_labels
        for mine, theirs in zip(self.seg_labelled, other.seg_labelled, strict=True):
            mine += theirs
        for mine, theirs in zip(self.seg_errors, other.seg_errors, strict=True):
            mine += theirs
        return self

    @property
    def coverage(self) -> float:
        """Share of its predictions whose label is in (0 before any prediction)."""
        n = self.sketch.prediction_count
        return self.sketch.count / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sketch": self.sketch.to_dict(),
            "estimated": self.estimated,
            "lag": self.lag_checked,
            "unknown": self.unknown_labels,
            "seg_labelled": [a.tolist() for a in self.seg_labelled],
            "seg_errors": [a.tolist() for a in self.seg_errors],
        }

    @classmethod
    def from_dict(cls, v: dict[str, Any]) -> PerformanceBucket:
        return cls(
            PerformanceSketch.from_dict(v["sketch"]),
            v["estimated"],
            v["lag"],
            v["unknown"],
            [np.asarray(a, dtype=np.int64) for a in v.get("seg_labelled", [])],
            [np.asarray(a, dtype=np.int64) for a in v.get("seg_errors", [])],
        )


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha)


class PerformanceJudge:
    """The tests, with the reference they compare with and the false-alarm rates they spend per window."""

    def __init__(
        self,
        layout: ModelLayout,
        task: Task,
        alpha_warning: float,
        alpha_critical: float,
        segment_names: list[str],
        segment_categories: list[tuple[Any, ...]],
    ) -> None:
        self.layout = layout
        self.cfg = layout.config.performance
        self.labels_cfg = layout.config.labels
        self.task = task
        labels = layout.profile.labels
        self.reference: dict[str, float] = labels.performance if labels else {}
        self.reference_n = labels.joined if labels else 0
        self.alpha_warning = alpha_warning
        self.alpha_critical = alpha_critical
        self.segment_names = segment_names
        self.segment_categories = segment_categories

    def drop_test(
        self, value: float, n: int, baseline: float, n_ref: int
    ) -> tuple[Severity | None, float, float]:
        """(level, drop, z) for a fall of an accuracy-like share from ``baseline``."""
        drop = baseline - value
        var = baseline * (1 - baseline)
        se = math.sqrt(max(var, 1e-6) * (1.0 / max(n, 1) + 1.0 / max(n_ref, 1)))
        z = drop / se
        level = None
        if drop >= self.cfg.accuracy_drop_critical and z > _z(self.alpha_critical):
            level = Severity.CRITICAL
        elif drop >= self.cfg.accuracy_drop_warning and z > _z(self.alpha_warning):
            level = Severity.WARNING
        return level, drop, z

    def cbpe_baseline(self) -> float | None:
        """The reference's own estimate, which a window's estimate is compared with; ``None`` when the
        comparison says nothing about accuracy: not binary, or the reference's scores are so miscalibrated
        that its estimate misses its realised accuracy by more than the warning margin."""
        expected, realised = self.reference.get("expected_accuracy"), self.reference.get("accuracy")
        if self.task != "binary" or not self.cfg.estimate_without_labels:
            return None
        if expected is None or realised is None:
            return None
        return expected if abs(expected - realised) <= self.cfg.accuracy_drop_warning else None

    def estimate(self, b: PerformanceBucket) -> list[Observation]:
        baseline = self.cbpe_baseline()
        if baseline is None:
            return []
        expected = b.sketch.expected_performance()
        n = int(expected.get("estimated_count", 0))
        acc = expected.get("expected_accuracy", math.nan)
        if n < max(self.layout.config.window.min_events, self.cfg.min_labelled) or not math.isfinite(acc):
            return []
        b.estimated = True
        level, drop, z = self.drop_test(acc, n, baseline, self.reference_n)
        details = {
            "estimate": True,
            "method": "confidence-based (CBPE)",
            "expected": expected,
            "reference_estimate": baseline,
            "reference_accuracy": self.reference.get("accuracy"),
            "drop": drop,
            "z": z,
            "predictions": n,
        }
        threshold = baseline - (
            self.cfg.accuracy_drop_critical if level is Severity.CRITICAL else self.cfg.accuracy_drop_warning
        )
        message = (
            f"estimated accuracy {acc:.1%} vs {baseline:.1%} estimated on the reference "
            f"(an estimate from scores, before labels; {n} predictions)"
        )
        return [
            Observation(
                AlertKind.CONCEPT_DRIFT,
                ESTIMATE_SIGNAL,
                level,
                "cbpe",
                drop,
                self.cfg.accuracy_drop_critical
                if level is Severity.CRITICAL
                else self.cfg.accuracy_drop_warning,
                self.cfg.accuracy_drop_warning,
                None,
                {**details, "accuracy_floor": threshold},
                message,
            )
        ]

    def judge(self, b: PerformanceBucket, coverage: float) -> list[Observation]:
        metrics = b.sketch.metrics()
        n = b.sketch.count
        details: dict[str, Any] = {
            "metrics": metrics,
            "labelled": n,
            "predictions": b.sketch.prediction_count,
            "label_coverage": coverage,
            "reference": self.reference,
        }
        if self.task == "binary" and self.cfg.estimate_without_labels:
            details["estimated"] = b.sketch.expected_performance()
        if b.unknown_labels:
            details["labels_of_unknown_class"] = b.unknown_labels
        obs: list[Observation] = []
        if self.task == "regression":
            base = self.reference.get("mae")
            mae = metrics.get("mae", math.nan)
            if base is not None and base > 0 and math.isfinite(mae):
                rise = (mae - base) / base
                rmse = metrics.get("rmse", math.nan)
                sd = math.sqrt(max(rmse * rmse - mae * mae, 1e-12)) if math.isfinite(rmse) else base
                z = (mae - base) / (sd * math.sqrt(1.0 / n + 1.0 / max(self.reference_n, 1)))
                level = None
                if rise >= self.cfg.mae_increase_critical and z > _z(self.alpha_critical):
                    level = Severity.CRITICAL
                elif rise >= self.cfg.mae_increase_warning and z > _z(self.alpha_warning):
                    level = Severity.WARNING
                thr = (
                    self.cfg.mae_increase_critical
                    if level is Severity.CRITICAL
                    else self.cfg.mae_increase_warning
                )
                obs.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        PERFORMANCE_SIGNAL,
                        level,
                        "mae_increase",
                        rise,
                        thr,
                        self.cfg.mae_increase_warning,
                        None,
                        {**details, "z": z},
                        f"MAE {mae:.4g} vs reference {base:.4g} ({rise:+.1%}; {coverage:.0%} of labels in)",
                    )
                )
        else:
            base = self.reference.get("accuracy")
            acc = metrics.get("accuracy", math.nan)
            if base is not None and math.isfinite(acc):
                level, drop, z = self.drop_test(acc, n, base, self.reference_n)
                thr = (
                    self.cfg.accuracy_drop_critical
                    if level is Severity.CRITICAL
                    else self.cfg.accuracy_drop_warning
                )
                obs.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        PERFORMANCE_SIGNAL,
                        level,
                        "accuracy_drop",
                        drop,
                        thr,
                        self.cfg.accuracy_drop_warning,
                        None,
                        {**details, "z": z},
                        f"accuracy {acc:.1%} vs reference {base:.1%} "
                        f"({n} labelled, {coverage:.0%} of labels in)",
                    )
                )
                if b.estimated and level is None:
                    obs.append(self.estimate_refuted(acc, n))
        return obs

    def estimate_refuted(self, accuracy: float, labelled: int) -> Observation:
        """The labels caught up and show no drop: whatever the estimate said about this window is over."""
        warn = self.cfg.accuracy_drop_warning
        return Observation(
            AlertKind.CONCEPT_DRIFT,
            ESTIMATE_SIGNAL,
            None,
            "realised_accuracy",
            0.0,
            warn,
            warn,
            None,
            {"estimate": True, "realised_accuracy": accuracy, "labelled": labelled},
            f"realised accuracy {accuracy:.1%} over {labelled} labelled predictions: no drop",
            conclusive=True,
        )

    def segments(self, b: PerformanceBucket) -> list[Observation]:
        """A segment whose error rate exceeds the rest's by more than it did in the reference (by the spread
        margins), with a two-proportion z-test Bonferroni-split over the segment's values."""
        if not self.segment_names:
            return []
        out: list[Observation] = []
        ref_all = self.layout.profile.labels.segments if self.layout.profile.labels else {}
        min_n = self.cfg.segment_min_labelled
        warn, crit = self.cfg.segment_spread_warning, self.cfg.segment_spread_critical
        for i, name in enumerate(self.segment_names):
            labelled, errors = b.seg_labelled[i], b.seg_errors[i]
            total_n, total_e = int(labelled.sum()), int(errors.sum())
            cats = self.segment_categories[i]
            ref = ref_all.get(name, {})
            ref_n = np.asarray(ref.get("labelled", []), dtype=np.float64)
            ref_e = np.asarray(ref.get("errors", []), dtype=np.float64)
            values = [
                v for v in range(len(cats) + 1) if labelled[v] >= min_n and total_n - labelled[v] >= min_n
            ]
            for v in values:
                n_v, e_v = int(labelled[v]), int(errors[v])
                n_r, e_r = total_n - n_v, total_e - e_v
                rate_v, rate_r = e_v / n_v, e_r / n_r
                spread = rate_v - rate_r
                base = 0.0
                var = rate_v * (1 - rate_v) / n_v + rate_r * (1 - rate_r) / n_r
                if v < len(ref_n) and ref_n[v] >= 50 and ref_n.sum() - ref_n[v] >= 50:
                    rv, rr = ref_e[v] / ref_n[v], (ref_e.sum() - ref_e[v]) / (ref_n.sum() - ref_n[v])
                    base = rv - rr
                    var += rv * (1 - rv) / ref_n[v] + rr * (1 - rr) / (ref_n.sum() - ref_n[v])
                excess = spread - base
                z = excess / math.sqrt(max(var, 1e-12))
                k = max(len(values), 1)
                level = None
                if excess >= crit and z > _z(self.alpha_critical / k):
                    level = Severity.CRITICAL
                elif excess >= warn and z > _z(self.alpha_warning / k):
                    level = Severity.WARNING
                value = cats[v] if v < len(cats) else "(other)"
                signal = f"segment:{name}={value}"
                details = {
                    "segment": {"feature": name, "value": value},
                    "error_rate": rate_v,
                    "others_error_rate": rate_r,
                    "spread": spread,
                    "reference_spread": base,
                    "labelled": n_v,
                    "z": z,
                }
                message = (
                    f"{name}={value}: error rate {rate_v:.1%} vs {rate_r:.1%} for the other segments "
                    f"(reference gap {base:+.1%}; {n_v} labelled)"
                )
                out.append(
                    Observation(
                        AlertKind.CONCEPT_DRIFT,
                        signal,
                        level,
                        "segment_spread",
                        excess,
                        crit if level is Severity.CRITICAL else warn,
                        warn,
                        None,
                        details,
                        message,
                    )
                )
        return out

    def label_health(self, b: PerformanceBucket, coverage: float, stats: JoinerStats) -> Observation:
        sla = self.labels_cfg.freshness_sla_seconds
        late = math.isfinite(stats.lag_p95) and stats.lag_p95 > sla
        short = coverage < self.labels_cfg.min_coverage
        level = (
            Severity.WARNING
            if (late or short) and b.sketch.prediction_count >= self.cfg.min_labelled
            else None
        )
        details = {
            "label_coverage": coverage,
            "min_coverage": self.labels_cfg.min_coverage,
            "lag_p50_seconds": stats.lag_p50,
            "lag_p95_seconds": stats.lag_p95,
            "sla_seconds": sla,
            "stale_labels": stats.stale_labels,
            "outstanding": stats.outstanding,
        }
        message = (
            f"labels: {coverage:.0%} of predictions labelled within the {sla:.0f}s SLA "
            f"(need {self.labels_cfg.min_coverage:.0%}); lag p95 {stats.lag_p95:.0f}s"
        )
        shortfall = max(self.labels_cfg.min_coverage - coverage, 0.0)
        return Observation(
            AlertKind.LABEL_LAG,
            LABELS_SIGNAL,
            level,
            "label_coverage",
            shortfall,
            1e-9,
            1e-9,
            None,
            details,
            message,
        )
