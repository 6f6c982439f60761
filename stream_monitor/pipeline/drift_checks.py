"""The single checks of a closed window, each turning the window's sketch into :class:`Observation` s.

:class:`~stream_monitor.pipeline.detection.ModelMonitor` runs them for every signal of a model: the distance
of a signal's histogram from the reference (calibrated or :class:`FixedThresholds`), a share that should stay
near the reference's (missing values, wrong types, values out of range, unseen categories), vanished
categories, the schema (unknown and missing fields) and the feature correlations. Each gets the share of the
model's false-alarm budget it may spend (``alpha_warning``, ``alpha_critical``) from the monitor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import bdtrc

from stream_monitor.config.schema import DataQualityConfig
from stream_monitor.core.alerts import AlertKind, Severity
from stream_monitor.detectors.calibration import ThresholdCalibrator, Thresholds
from stream_monitor.pipeline.drift_explanations import _fmt, _top_bins
from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.pipeline.model_layout import MULTIVARIATE_SIGNAL, ModelLayout
from stream_monitor.stats.correlation import correlation_test
from stream_monitor.stats.divergences import chi2_p_value, statistic_function
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.sketches import WindowSketch

__all__ = [
    "FixedThresholds",
    "correlation_observations",
    "distance_observation",
    "quality_observations",
    "rate_observation",
    "schema_observations",
    "vanished_observation",
]


class FixedThresholds:
    """``thresholds: fixed``: the configured levels, whatever the window's size."""

    def __init__(
        self, statistic: str, ref: NumericProfile | CategoricalProfile, warning: float, critical: float
    ) -> None:
        edges = ref.edges if isinstance(ref, NumericProfile) else None
        scale = ref.std if isinstance(ref, NumericProfile) and ref.std > 0 else 1.0
        self.statistic = statistic
        self.ref_counts = ref.counts
        self.warning = warning
        self.critical = critical
        self._fn = statistic_function(statistic, edges, scale)

    def statistic_of(self, counts: np.ndarray[Any, Any]) -> float:
        return float(self._fn(counts, self.ref_counts))

    def thresholds(self, n: int) -> Thresholds:
        return Thresholds(self.warning, self.critical, math.nan, math.nan, n)


def distance_observation(
    kind: AlertKind,
    name: str,
    cal: ThresholdCalibrator | FixedThresholds,
    counts: np.ndarray[Any, Any],
    ref: NumericProfile | CategoricalProfile,
    n: int,
    explain_more: Callable[[], dict[str, Any]] | None = None,
) -> tuple[Observation, Thresholds]:
    test_name = cal.statistic
    stat = cal.statistic_of(counts)
    thr = cal.thresholds(n)
    level = Severity.CRITICAL if stat >= thr.critical else Severity.WARNING if stat >= thr.warning else None
    threshold = thr.critical if level is Severity.CRITICAL else thr.warning
    details: dict[str, Any] = {
        "window_values": n,
        "thresholds": {"warning": thr.warning, "critical": thr.critical, "calibrated_for_n": thr.n},
        "window_counts": counts.tolist(),  # the window's histogram on the reference's bins
    }
    if test_name == "chi2":
        details["p_value"] = chi2_p_value(stat, n, len(counts))
    op = ">=" if level else "<"
    label = level.value if level else "ok"
    message = f"{name} shifted: {test_name.upper()} {_fmt(stat)} {op} {_fmt(threshold)} ({label})"
    obs = Observation(
        kind,
        name,
        level,
        test_name,
        stat,
        threshold,
        thr.warning,
        details.get("p_value"),
        details,
        message,
        explain=lambda: {"top_bins": _top_bins(counts, ref), **(explain_more() if explain_more else {})},
    )
    return obs, thr


def quality_observations(
    dq: DataQualityConfig,
    name: str,
    prof: NumericProfile | CategoricalProfile,
    missing: int,
    wrong: int,
    total: int,
    alpha_warning: float,
    alpha_critical: float,
) -> list[Observation]:
    """Missing values (data quality) and values of the wrong type (schema drift) against the reference."""
    ref_bad = prof.invalid / max(prof.count + prof.nulls + prof.invalid, 1)
    return [
        rate_observation(
            AlertKind.DATA_QUALITY,
            name,
            "null_rate",
            missing,
            total,
            prof.null_rate,
            dq.null_rate_warning,
            dq.null_rate_critical,
            alpha_warning,
            alpha_critical,
        ),
        rate_observation(
            AlertKind.SCHEMA_DRIFT,
            name,
            "wrong_type",
            wrong,
            total,
            ref_bad,
            dq.wrong_type_warning,
            dq.wrong_type_critical,
            alpha_warning,
            alpha_critical,
        ),
    ]


def rate_observation(
    kind: AlertKind,
    name: str,
    detector: str,
    hits: int,
    n: int,
    ref_rate: float,
    warn: float,
    crit: float,
    alpha_warning: float,
    alpha_critical: float,
) -> Observation:
    """A share that should stay near the reference: flagged when it rose by ``warn`` / ``crit`` *and* the
    rise is beyond chance for a window of ``n`` values at the budget's rates."""
    rate = hits / n if n else 0.0
    p0 = min(max(ref_rate, 0.5 / max(n, 1)), 1.0)
    p_value = float(bdtrc(hits - 1, n, p0)) if hits else 1.0  # binom.sf, minus scipy.stats' overhead
    rise = rate - ref_rate
    level = None
    if rise >= crit and p_value < alpha_critical:
        level = Severity.CRITICAL
    elif rise >= warn and p_value < alpha_warning:
        level = Severity.WARNING
    threshold = ref_rate + (crit if level is Severity.CRITICAL else warn)
    what = {
        "null_rate": "missing values",
        "wrong_type": "values of the wrong type",
        "out_of_range": "values outside the reference range",
        "new_category": "unseen categories",
    }[detector]
    message = f"{name}: {rate:.1%} {what} (reference {ref_rate:.1%})"
    return Observation(
        kind,
        name,
        level,
        detector,
        rate,
        threshold,
        ref_rate + warn,
        p_value,
        {"count": hits, "of": n, "reference_rate": ref_rate},
        message,
    )


def vanished_observation(
    name: str, prof: CategoricalProfile, counts: np.ndarray[Any, Any], n: int, alpha_warning: float
) -> Observation:
    """A reference category absent from a window big enough that its absence is not chance."""
    shares = prof.counts[:-1] / max(prof.count, 1)
    # P(no occurrence in n draws) = (1 - q)^n; flag categories where that is below the budget's rate.
    log_p = n * np.log1p(-np.minimum(shares, 1 - 1e-12))
    gone = [k for k in range(len(shares)) if counts[k] == 0 and log_p[k] < math.log(alpha_warning)]
    level = Severity.WARNING if gone else None
    vanished_share = float(shares[gone].sum()) if gone else 0.0
    cats = [prof.categories[k] for k in gone]
    message = f"{name}: categories {cats[:5]!r} (reference share {vanished_share:.1%}) vanished"
    return Observation(
        AlertKind.COVARIATE_DRIFT,
        name,
        level,
        "vanished_category",
        vanished_share,
        1e-12,
        1e-12,
        None,
        {"vanished": cats[:20]},
        message,
    )


def schema_observations(layout: ModelLayout, sk: WindowSketch) -> list[Observation]:
    n = sk.events[0]
    if n < layout.config.window.min_events:
        return []
    out = []
    unknown = sorted(sk.unknown_fields.items(), key=lambda kv: -kv[1])
    share = unknown[0][1] / n if unknown else 0.0
    level = Severity.WARNING if share >= 0.01 else None
    out.append(
        Observation(
            AlertKind.SCHEMA_DRIFT,
            "schema",
            level,
            "unknown_fields",
            share,
            0.01,
            0.01,
            None,
            {"unknown_fields": [{"field": k, "events": c} for k, c in unknown]},
            f"features not in the reference: {[k for k, _ in unknown][:5]}",
        )
    )
    absent = sk.num_codes[: len(layout.numeric_features), 2]
    cat_absent = sk.cat_codes[: len(layout.categorical_features), 2]
    names = list(layout.numeric_features) + list(layout.categorical_features)
    shares = np.concatenate([absent, cat_absent]) / n
    missing = [(names[k], float(shares[k])) for k in np.flatnonzero(shares >= 0.5)]
    worst = max((s for _, s in missing), default=float(shares.max()) if len(shares) else 0.0)
    level = Severity.CRITICAL if missing else None
    out.append(
        Observation(
            AlertKind.SCHEMA_DRIFT,
            "schema",
            level,
            "missing_fields",
            worst,
            0.5,
            0.5,
            None,
            {"missing_fields": [{"field": f, "share": s} for f, s in missing]},
            f"expected features missing: {[f for f, _ in missing][:5]}",
        )
    )
    return out


def correlation_observations(
    layout: ModelLayout, sk: WindowSketch, alpha_warning: float, alpha_critical: float
) -> list[Observation]:
    corr = layout.correlation
    mv = layout.profile.multivariate
    if corr is None or mv is None:
        return []
    cfg = layout.config.multivariate
    cols = [layout.numeric_features[c] for c in corr.columns]
    keep = [mv.features.index(n) for n in cols]
    ref_r = mv.correlation[np.ix_(keep, keep)] if corr.reference is None else corr.reference
    ref_n = mv.counts[np.ix_(keep, keep)]
    result = correlation_test(
        sk.mv_sums,
        ref_r,
        ref_n,
        alpha_warning,
        alpha_critical,
        (cfg.min_change_warning, cfg.min_change_critical),
        min_rows=layout.config.window.min_events,
    )
    level = {0: None, 1: Severity.WARNING, 2: Severity.CRITICAL}[result.level]
    pairs = [
        {
            "features": [cols[p.i], cols[p.j]],
            "reference": round(p.reference, 4),
            "window": round(p.window, 4),
            "z": round(p.z, 2),
        }
        for p in result.pairs
    ]
    threshold = cfg.min_change_critical if level is Severity.CRITICAL else cfg.min_change_warning
    if result.pairs:
        p = result.pairs[0]
        message = f"correlation of {cols[p.i]} and {cols[p.j]} changed: {p.reference:+.2f} -> {p.window:+.2f}"
    else:
        message = "feature correlations as in the reference"
    return [
        Observation(
            AlertKind.MULTIVARIATE_DRIFT,
            MULTIVARIATE_SIGNAL,
            level,
            "correlation",
            result.largest_change,
            threshold,
            cfg.min_change_warning,
            None,
            {
                "pairs": pairs,
                "pairs_tested": len(cols) * (len(cols) - 1) // 2,
                **({"seasonality": {"period_seconds": corr.within_phase_of}} if corr.within_phase_of else {}),
            },
            message,
        )
    ]
