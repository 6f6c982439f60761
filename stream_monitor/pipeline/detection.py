"""Stage 2: test a closed window of one model against its reference and turn the results into alerts.

Every test of a model shares one false-alarm budget (``budget.false_alerts_per_day``): it is split evenly over
the model's tests and its expected windows per day, and each test's thresholds are calibrated for that rate and
the window's size (:mod:`stream_monitor.detectors.calibration`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from scipy.special import bdtrc

from stream_monitor.core.alerts import Alert, AlertKind, Severity
from stream_monitor.core.clock import Clock, SystemClock
from stream_monitor.core.errors import ConfigError, SnapshotError
from stream_monitor.detectors.calibration import ThresholdCalibrator, Thresholds, per_test_alpha
from stream_monitor.detectors.sequential import Cusum
from stream_monitor.pipeline.lifecycle import AlertLifecycle, Observation
from stream_monitor.pipeline.model_layout import MULTIVARIATE_SIGNAL, ModelLayout
from stream_monitor.pipeline.windows import ClosedWindow
from stream_monitor.stats.correlation import correlation_test
from stream_monitor.stats.divergences import STATISTICS, chi2_p_value, statistic_function
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.sketches import WindowSketch

SNAPSHOT_VERSION: Final = 1
CRITICAL_ALPHA_RATIO: Final = (
    10.0  # the critical level is ten times less likely by chance than the warning level
)
CUSUM_K: Final = 0.5
_RESCALE_FACTORS: Final = (10.0, 100.0, 1000.0, 1e6, 60.0, 3600.0, 2.54, 1.609344, 0.45359237, 0.3048)
_ROLE_KIND: Final = {
    "feature": AlertKind.COVARIATE_DRIFT,
    "score": AlertKind.PREDICTION_DRIFT,
    "prediction": AlertKind.PREDICTION_DRIFT,
}
# Tests per signal, for splitting the budget: distance, CUSUM, null rate, wrong type, range / new + vanished.
_NUMERIC_FEATURE_TESTS: Final = 5
_CATEGORICAL_FEATURE_TESTS: Final = 6


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


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class ModelMonitor:
    """Tests closed windows of one model and keeps the state that spans windows (CUSUMs, alert episodes)."""

    def __init__(self, layout: ModelLayout, clock: Clock | None = None, seed: int = 0) -> None:
        self.layout = layout
        self.clock = clock or SystemClock()
        cfg = layout.config
        sk = layout.sketch
        rate = layout.profile.events_per_second
        window_s = (
            min(cfg.window.max_seconds, cfg.window.max_events / rate) if rate > 0 else cfg.window.max_seconds
        )
        self.windows_per_day = 86400.0 / window_s
        n_tests = (
            _NUMERIC_FEATURE_TESTS * len(layout.numeric_features)
            + _CATEGORICAL_FEATURE_TESTS * len(layout.categorical_features)
            + (len(sk.numeric) - len(layout.numeric_features))
            + (len(sk.categorical) - len(layout.categorical_features))
            + 3  # schema: unknown fields, missing fields; correlations
            # performance: the error stream, the windowed accuracy test, the label-free estimate
            + (3 if cfg.performance.enabled and layout.profile.labels and layout.profile.predictions else 0)
        )
        self.n_tests = n_tests
        self.alpha_warning = per_test_alpha(cfg.budget.false_alerts_per_day, self.windows_per_day, n_tests)
        self.alpha_critical = self.alpha_warning / CRITICAL_ALPHA_RATIO
        self._numeric_cal = [
            self._calibrator(s.role, s.name, s.profile, seed + i) for i, s in enumerate(sk.numeric)
        ]
        self._categorical_cal = [
            self._calibrator(s.role, s.name, s.profile, seed + 1000 + i) for i, s in enumerate(sk.categorical)
        ]
        h = Cusum.h_for_run_length(1.0 / self.alpha_warning, k=CUSUM_K)
        self._cusums = {
            i: Cusum(k=CUSUM_K, h=h)
            for i, s in enumerate(sk.numeric)
            if s.role == "feature" and cfg.sequential.enabled and self._sequential_on(s.name)
        }
        self._cusum_hold: dict[int, bool] = {}
        self.lifecycle = AlertLifecycle(
            layout.model_id,
            cfg.alerting.resolve_after_windows,
            cfg.alerting.hysteresis,
            cfg.alerting.cooldown_seconds,
        )
        self.windows_tested = 0
        self.windows_skipped = 0
        self.last_observations: list[Observation] = []

    def _sequential_on(self, name: str) -> bool:
        fc = self.layout.config.features.get(name)
        return fc is None or fc.sequential

    def _calibrator(
        self, role: str, name: str, profile: NumericProfile | CategoricalProfile, seed: int
    ) -> ThresholdCalibrator | FixedThresholds:
        test = self.layout.test_for(role, name)
        if STATISTICS[test.statistic].ordinal_only and isinstance(profile, CategoricalProfile):
            fc = self.layout.config.features.get(name) if role == "feature" else None
            where = (
                "prediction.test"
                if role in ("prediction", "score")
                else f"features.{name}.test"
                if fc is not None and fc.test is not None
                else "default_test"
            )
            raise ConfigError(
                [
                    (
                        f"models.{self.layout.model_id}.{where}.statistic",
                        f"{test.statistic} needs ordered bins; use psi, js or chi2 for a categorical signal",
                    )
                ]
            )
        warning, critical = test.levels()
        if self.layout.config.thresholds == "fixed":
            return FixedThresholds(test.statistic, profile, warning, critical)
        edges = profile.edges if isinstance(profile, NumericProfile) else None
        scale = profile.std if isinstance(profile, NumericProfile) and profile.std > 0 else 1.0
        return ThresholdCalibrator(
            test.statistic,
            profile.counts,
            self.alpha_warning,
            self.alpha_critical,
            floors=(warning, critical),
            edges=edges,
            scale=scale,
            seed=seed,
        )

    # ---- the test of one window ------------------------------------------------------------------------------
    def test(self, window: ClosedWindow) -> list[Alert]:
        sketch = window.sketch
        min_events = self.layout.config.window.min_events
        if sketch.primary_events < min_events:
            self.windows_skipped += 1
            return []
        self.windows_tested += 1
        observations: list[Observation] = []
        for i, signal in enumerate(self.layout.sketch.numeric):
            observations.extend(
                self._numeric(i, signal.role, signal.name, signal.profile, sketch, min_events)
            )
        for j, csignal in enumerate(self.layout.sketch.categorical):
            observations.extend(
                self._categorical(j, csignal.role, csignal.name, csignal.profile, sketch, min_events)
            )
        observations.extend(self._correlation(sketch))
        observations.extend(self._schema(sketch))
        self.last_observations = observations
        return self.lifecycle.observe(window.info, observations, detected_at=self.clock.now())

    def _distance(
        self,
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
        level = (
            Severity.CRITICAL if stat >= thr.critical else Severity.WARNING if stat >= thr.warning else None
        )
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

    def _numeric(
        self, i: int, role: str, name: str, prof: NumericProfile, sk: WindowSketch, min_events: int
    ) -> list[Observation]:
        out: list[Observation] = []
        kind = _ROLE_KIND[role]
        n = int(sk.num_codes[i, 0])
        total = int(sk.num_codes[i].sum())
        if n >= min_events:
            mean, std = sk.numeric_mean_std(i)
            extremes = (float(sk.num_min[i]), float(sk.num_max[i]))
            obs, _ = self._distance(
                kind,
                name,
                self._numeric_cal[i],
                sk.numeric_counts(i),
                prof,
                n,
                explain_more=lambda: _shift_details(prof, mean, std, extremes),
            )
            if obs.level is not None:
                obs = _with_message(obs, f"{obs.message}; {_shift_phrase(prof, mean)}")
            out.append(obs)
            if i in self._cusums:
                out.append(self._cusum(i, name, prof, mean, n))
        if role == "feature" and total >= min_events:
            dq = self.layout.config.data_quality
            if dq.enabled:
                codes = sk.num_codes[i]
                out.extend(
                    self._quality(name, prof, int(codes[1] + codes[2] + codes[4]), int(codes[3]), total)
                )
                if n >= min_events:
                    outside = int(sk.num_out[i].sum())
                    obs = self._rate(
                        AlertKind.DATA_QUALITY,
                        name,
                        "out_of_range",
                        outside,
                        n,
                        0.0,
                        dq.range_warning,
                        dq.range_critical,
                    )
                    obs.details.update(
                        {
                            "below_reference_min": int(sk.num_out[i, 0]),
                            "above_reference_max": int(sk.num_out[i, 1]),
                            "reference_range": [prof.min, prof.max],
                            "window_range": [_finite(sk.num_min[i]), _finite(sk.num_max[i])],
                        }
                    )
                    out.append(obs)
        return out

    def _cusum(self, i: int, name: str, prof: NumericProfile, mean: float, n: int) -> Observation:
        """CUSUM on the window mean's shift, in units of the window's own standard error.

        The reference mean is itself an estimate, and its error is shared by every window: fed as if it were
        noise it would pile up in the CUSUM. So the allowance per step is the larger of half a standard error
        (Page's k = 0.5) and the smallest relevant shift (``min_effect_sd``, at least four reference standard
        errors) in window standard errors: a constant offset below that never accumulates.
        """
        det = self._cusums[i]
        scale = prof.std if prof.std > 0 else 1.0
        effect = (mean - prof.mean) / scale
        root_n = math.sqrt(n)
        z = effect * root_n
        tolerance = max(self.layout.config.sequential.min_effect_sd, 4.0 / math.sqrt(max(prof.count, 1)))
        det.update(z, k=tolerance * root_n)
        relevant = abs(effect) >= tolerance
        alarm = det.drift_detected and relevant
        held = self._cusum_hold.get(i, False) and relevant
        statistic = det.statistic
        if det.drift_detected:
            det.reset()
        self._cusum_hold[i] = alarm or held
        level = Severity.WARNING if alarm or held else None
        direction = "up" if effect > 0 else "down"
        details = {
            "mean_shift_sd": effect,
            "tolerance_sd": tolerance,
            "direction": direction,
            "decision_interval": det.h,
        }
        message = (
            f"{name} is drifting {direction}: CUSUM {_fmt(statistic)} > {_fmt(det.h)} (mean {effect:+.2f} sd)"
        )
        stat_for_lifecycle = max(statistic, det.h) if held else statistic
        return Observation(
            AlertKind.COVARIATE_DRIFT,
            name,
            level,
            "cusum",
            stat_for_lifecycle,
            det.h,
            det.h,
            None,
            details,
            message,
        )

    def _quality(
        self, name: str, prof: NumericProfile | CategoricalProfile, missing: int, wrong: int, total: int
    ) -> list[Observation]:
        """Missing values (data quality) and values of the wrong type (schema drift) against the reference."""
        dq = self.layout.config.data_quality
        ref_bad = prof.invalid / max(prof.count + prof.nulls + prof.invalid, 1)
        return [
            self._rate(
                AlertKind.DATA_QUALITY,
                name,
                "null_rate",
                missing,
                total,
                prof.null_rate,
                dq.null_rate_warning,
                dq.null_rate_critical,
            ),
            self._rate(
                AlertKind.SCHEMA_DRIFT,
                name,
                "wrong_type",
                wrong,
                total,
                ref_bad,
                dq.wrong_type_warning,
                dq.wrong_type_critical,
            ),
        ]

    def _rate(
        self,
        kind: AlertKind,
        name: str,
        detector: str,
        hits: int,
        n: int,
        ref_rate: float,
        warn: float,
        crit: float,
    ) -> Observation:
        """A share that should stay near the reference: flagged when it rose by ``warn`` / ``crit`` *and* the
        rise is beyond chance for a window of ``n`` values at the budget's rates."""
        rate = hits / n if n else 0.0
        p0 = min(max(ref_rate, 0.5 / max(n, 1)), 1.0)
        p_value = float(bdtrc(hits - 1, n, p0)) if hits else 1.0  # binom.sf, minus scipy.stats' overhead
        rise = rate - ref_rate
        level = None
        if rise >= crit and p_value < self.alpha_critical:
            level = Severity.CRITICAL
        elif rise >= warn and p_value < self.alpha_warning:
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

    def _categorical(
        self, j: int, role: str, name: str, prof: CategoricalProfile, sk: WindowSketch, min_events: int
    ) -> list[Observation]:
        out: list[Observation] = []
        kind = _ROLE_KIND[role]
        counts = sk.categorical_counts(j)
        n = int(counts.sum())
        total = int(sk.cat_codes[j].sum())
        if n >= min_events:
            obs, _ = self._distance(kind, name, self._categorical_cal[j], counts, prof, n)
            out.append(obs)
        if role != "feature" or total < min_events:
            return out
        dq = self.layout.config.data_quality
        if n >= min_events:
            ref_other = prof.counts[-1] / max(prof.count, 1)
            obs = self._rate(
                AlertKind.COVARIATE_DRIFT,
                name,
                "new_category",
                int(counts[-1]),
                n,
                float(ref_other),
                dq.new_category_warning,
                dq.new_category_critical,
            )
            new_values = sorted(sk.new_values[j].items(), key=lambda kv: -kv[1])
            obs.details["new_values"] = [{"value": v, "count": c} for v, c in new_values]
            if obs.level is not None and new_values:
                shown = ", ".join(repr(v) for v, _ in new_values[:3])
                obs = _with_message(obs, f"{name}: new categories {shown} in {obs.statistic:.1%} of events")
                # the distance test usually speaks for the signal: it names the new categories too
                out = [
                    _with_message(o, f"{o.message}; new categories {shown} in {obs.statistic:.1%} of events")
                    if o.level is not None and o.detector == self._categorical_cal[j].statistic
                    else o
                    for o in out
                ]
            out.append(obs)
            out.append(self._vanished(name, prof, counts, n))
        if dq.enabled:
            codes = sk.cat_codes[j]
            out.extend(self._quality(name, prof, int(codes[1] + codes[2]), int(codes[3]), total))
        return out

    def _vanished(
        self, name: str, prof: CategoricalProfile, counts: np.ndarray[Any, Any], n: int
    ) -> Observation:
        """A reference category absent from a window big enough that its absence is not chance."""
        shares = prof.counts[:-1] / max(prof.count, 1)
        # P(no occurrence in n draws) = (1 - q)^n; flag categories where that is below the budget's rate.
        log_p = n * np.log1p(-np.minimum(shares, 1 - 1e-12))
        gone = [k for k in range(len(shares)) if counts[k] == 0 and log_p[k] < math.log(self.alpha_warning)]
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

    def _schema(self, sk: WindowSketch) -> list[Observation]:
        n = sk.events[0]
        if n < self.layout.config.window.min_events:
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
        absent = sk.num_codes[: len(self.layout.numeric_features), 2]
        cat_absent = sk.cat_codes[: len(self.layout.categorical_features), 2]
        names = list(self.layout.numeric_features) + list(self.layout.categorical_features)
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

    def _correlation(self, sk: WindowSketch) -> list[Observation]:
        corr = self.layout.correlation
        mv = self.layout.profile.multivariate
        if corr is None or mv is None:
            return []
        cfg = self.layout.config.multivariate
        cols = [self.layout.numeric_features[c] for c in corr.columns]
        keep = [mv.features.index(n) for n in cols]
        ref_r = mv.correlation[np.ix_(keep, keep)]
        ref_n = mv.counts[np.ix_(keep, keep)]
        result = correlation_test(
            sk.mv_sums,
            ref_r,
            ref_n,
            self.alpha_warning,
            self.alpha_critical,
            (cfg.min_change_warning, cfg.min_change_critical),
            min_rows=self.layout.config.window.min_events,
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
            message = (
                f"correlation of {cols[p.i]} and {cols[p.j]} changed: {p.reference:+.2f} -> {p.window:+.2f}"
            )
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
                {"pairs": pairs, "pairs_tested": len(cols) * (len(cols) - 1) // 2},
                message,
            )
        ]

    # ---- state ----------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "lifecycle": self.lifecycle.snapshot(),
            "cusums": {str(i): c.snapshot() for i, c in self._cusums.items()},
            "hold": {str(i): h for i, h in self._cusum_hold.items()},
            "windows": [self.windows_tested, self.windows_skipped],
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported monitor snapshot version {state.get('v')!r}")
        self.lifecycle.restore(state["lifecycle"])
        for key, snap in state["cusums"].items():
            if int(key) in self._cusums:
                self._cusums[int(key)] = Cusum.restore(snap)
        self._cusum_hold = {int(k): bool(v) for k, v in state["hold"].items()}
        self.windows_tested, self.windows_skipped = state["windows"]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _with_message(obs: Observation, message: str) -> Observation:
    return dataclasses.replace(obs, message=message)


def _top_bins(
    counts: np.ndarray[Any, Any], ref: NumericProfile | CategoricalProfile, top: int = 3
) -> list[dict[str, Any]]:
    """The bins whose share moved most, each with its range (numeric) or category, and both shares."""
    live = counts / max(counts.sum(), 1)
    base = ref.counts / max(ref.counts.sum(), 1)
    moved = np.argsort(-np.abs(live - base))[:top]
    out = []
    for k in moved:
        if isinstance(ref, NumericProfile):
            lo = ref.edges[k - 1] if k > 0 else None
            hi = ref.edges[k] if k < len(ref.edges) else None
            label: Any = [None if lo is None else float(lo), None if hi is None else float(hi)]
            key = "range"
        else:
            label = ref.categories[k] if k < len(ref.categories) else "(other)"
            key = "category"
        out.append(
            {key: label, "reference_share": round(float(base[k]), 6), "live_share": round(float(live[k]), 6)}
        )
    return out


def _shift_details(
    prof: NumericProfile, mean: float, std: float, extremes: tuple[float, float] = (math.nan, math.nan)
) -> dict[str, Any]:
    scale = prof.std if prof.std > 0 else 1.0
    details: dict[str, Any] = {
        "reference_mean": prof.mean,
        "reference_std": prof.std,
        "window_mean": mean,
        "window_std": std,
        "mean_shift_sd": (mean - prof.mean) / scale,
        "std_ratio": std / scale if prof.std > 0 else None,
        "direction": "up" if mean > prof.mean else "down",
    }
    hint = _rescale_hint(prof, mean, std, extremes)
    if hint:
        details["hint"] = hint
    return details


def _shift_phrase(prof: NumericProfile, mean: float) -> str:
    scale = prof.std if prof.std > 0 else 1.0
    return f"mean {_fmt(prof.mean)} -> {_fmt(mean)} ({(mean - prof.mean) / scale:+.2f} sd)"


def _rescale_hint(prof: NumericProfile, mean: float, std: float, extremes: tuple[float, float]) -> str | None:
    """Both mean and spread scaled by the same round factor usually means a unit change upstream. A window
    that straddles the change has a mixed mean, so its extremes (the rescaled values dominate them) are
    compared with the reference's too."""
    if not (prof.std > 0 and std > 0 and abs(prof.mean) > 1e-9 and math.isfinite(mean)):
        return None
    mean_ratio, std_ratio = mean / prof.mean, std / prof.std
    lo, hi = extremes
    for factor in _RESCALE_FACTORS:
        for f in (factor, 1.0 / factor):
            whole = abs(mean_ratio / f - 1) < 0.05 and abs(std_ratio / f - 1) < 0.05
            by_extreme = f > 1 and any(
                ref != 0 and math.isfinite(live) and 0.8 < (live / ref) / f < 1.25
                for live, ref in ((hi, prof.max), (lo, prof.min))
            )
            if whole or (by_extreme and abs(std_ratio) > f**0.5):
                return f"values look rescaled by x{f:.6g} (a unit change upstream?)"
    return None
