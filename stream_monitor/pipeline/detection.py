"""Stage 2: test a closed window of one model against its reference and turn the results into alerts.

Every test of a model shares one false-alarm budget (``budget.false_alerts_per_day``): it is split evenly over
the model's tests and its expected windows per day, and each test's thresholds are calibrated for that rate and
the window's size (:mod:`stream_monitor.detectors.calibration`).

:class:`ModelMonitor` runs the checks of :mod:`stream_monitor.pipeline.drift_checks` (and the range test of
:mod:`stream_monitor.pipeline.range_check`) on every signal and keeps what spans windows (the CUSUMs, the alert
episodes); :mod:`stream_monitor.pipeline.drift_explanations` says what an observation shows beyond its
statistic. Each observation names its cause where the window shows it (``Observation.cause``: a unit change,
out-of-range values that a shift or stretch explains), so that the lifecycle raises one alert per cause.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

from stream_monitor.core.alerts import Alert, AlertKind
from stream_monitor.core.clock import Clock, SystemClock
from stream_monitor.core.errors import ConfigError, SnapshotError
from stream_monitor.detectors.calibration import MeanShiftCalibrator, ThresholdCalibrator, per_test_alpha
from stream_monitor.pipeline.drift_checks import (
    FixedThresholds,
    correlation_observations,
    distance_observation,
    quality_observations,
    rate_observation,
    schema_observations,
    vanished_observation,
)
from stream_monitor.pipeline.drift_explanations import (
    _rescale_hint,
    _shift_details,
    _shift_phrase,
    _with_message,
)
from stream_monitor.pipeline.lifecycle import AlertLifecycle, Observation
from stream_monitor.pipeline.mean_shift_cusums import MeanShiftCusums
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.range_check import blame_broken_values, range_observation
from stream_monitor.pipeline.seasonal_expectations import PhaseCalibrators, PhaseMatched, SeasonalExpectations
from stream_monitor.pipeline.windows import ClosedWindow
from stream_monitor.stats.divergences import STATISTICS
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.sketches import WindowSketch

SNAPSHOT_VERSION: Final = 1
CRITICAL_ALPHA_RATIO: Final = (
    10.0  # the critical level is ten times less likely by chance than the warning level
)
_ROLE_KIND: Final = {
    "feature": AlertKind.COVARIATE_DRIFT,
    "score": AlertKind.PREDICTION_DRIFT,
    "prediction": AlertKind.PREDICTION_DRIFT,
}
# Tests per signal, for splitting the budget: distance, CUSUM, null rate, wrong type, range / new + vanished.
_NUMERIC_FEATURE_TESTS: Final = 5
_CATEGORICAL_FEATURE_TESTS: Final = 6


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
        self.seasonal = SeasonalExpectations(
            layout,
            lambda r, n, p, s: PhaseCalibrators(
                self._calibrator(r, n, p, seed + s),
                MeanShiftCalibrator(p.counts, seed=seed + 2000 + s)
                if isinstance(p, NumericProfile)
                else None,
            ),
        )
        # the CUSUM's window means, standardised by a null spread bootstrapped from the reference's bins
        self.cusums = MeanShiftCusums(
            {
                i: MeanShiftCalibrator(s.profile.counts, seed=seed + 2000 + i)
                for i, s in enumerate(sk.numeric)
                if s.role == "feature" and cfg.sequential.enabled and self._sequential_on(s.name)
            },
            self.alpha_warning,
            cfg.sequential.min_effect_sd,
        )
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
        seasonal, seasonal_categories = self.seasonal.for_window(window)
        for i, signal in enumerate(self.layout.sketch.numeric):
            observations.extend(
                self._numeric(
                    i, signal.role, signal.name, signal.profile, sketch, min_events, seasonal.get(i)
                )
            )
        for j, csignal in enumerate(self.layout.sketch.categorical):
            observations.extend(
                self._categorical(
                    j,
                    csignal.role,
                    csignal.name,
                    csignal.profile,
                    sketch,
                    min_events,
                    seasonal_categories.get(j),
                )
            )
        observations.extend(
            correlation_observations(self.layout, sketch, self.alpha_warning, self.alpha_critical)
        )
        observations.extend(schema_observations(self.layout, sketch))
        self.last_observations = observations
        return self.lifecycle.observe(window.info, observations, detected_at=self.clock.now())

    def _numeric(
        self,
        i: int,
        role: str,
        name: str,
        prof: NumericProfile,
        sk: WindowSketch,
        min_events: int,
        seasonal: PhaseMatched[PhaseCalibrators, NumericProfile] | None = None,
    ) -> list[Observation]:
        out: list[Observation] = []
        kind = _ROLE_KIND[role]
        n = int(sk.num_codes[i, 0])
        total = int(sk.num_codes[i].sum())
        mean = std = math.nan
        extremes = (math.nan, math.nan)
        hint: str | None = None
        if n >= min_events:
            # a cyclic signal's distance and CUSUM are judged against the phases the window covers
            expected = seasonal.profile if seasonal is not None else prof
            mean, std = sk.numeric_mean_std(i)
            extremes = (float(sk.num_min[i]), float(sk.num_max[i]))
            obs, _ = distance_observation(
                kind,
                name,
                seasonal.calibrator.threshold if seasonal is not None else self._numeric_cal[i],
                sk.numeric_counts(i),
                expected,
                n,
                explain_more=lambda: _shift_details(expected, mean, std, extremes),
            )
            if seasonal is not None:
                obs.details["seasonality"] = seasonal.details
            if obs.level is not None:
                obs = _with_message(obs, f"{obs.message}; {_shift_phrase(expected, mean, std)}")
                hint = _rescale_hint(expected, mean, std, extremes)
                if hint is not None and role == "feature":  # a unit change is a data problem
                    obs = dataclasses.replace(
                        obs, message=f"{obs.message}; {hint}", cause=AlertKind.DATA_QUALITY
                    )
            out.append(obs)
            if i in self.cusums:
                phased = seasonal.calibrator.mean_shift if seasonal is not None else None
                slack = (
                    self.cusums.within_phase(phased, seasonal.edges, seasonal.uncovered, n)
                    if seasonal
                    else 0.0
                )
                out.append(self.cusums.observe(i, name, expected, sk.numeric_counts(i), n, phased, slack))
        if role == "feature" and total >= min_events:
            dq = self.layout.config.data_quality
            if dq.enabled:
                codes = sk.num_codes[i]
                out.extend(
                    quality_observations(
                        dq,
                        name,
                        prof,
                        int(codes[1] + codes[2] + codes[4]),
                        int(codes[3]),
                        total,
                        self.alpha_warning,
                        self.alpha_critical,
                    )
                )
                if n >= min_events:
                    shape = (mean, std, extremes)
                    out = blame_broken_values(out, prof, sk.num_out[i], shape)
                    moved = any(o.kind is AlertKind.COVARIATE_DRIFT and o.level is not None for o in out)
                    out.append(
                        range_observation(
                            dq,
                            name,
                            prof,
                            sk.num_out[i],
                            n,
                            (self.alpha_warning, self.alpha_critical),
                            moved=moved,
                            shape=shape,
                            hint=hint,
                        )
                    )
        return out

    def _categorical(
        self,
        j: int,
        role: str,
        name: str,
        prof: CategoricalProfile,
        sk: WindowSketch,
        min_events: int,
        seasonal: PhaseMatched[PhaseCalibrators, CategoricalProfile] | None = None,
    ) -> list[Observation]:
        out: list[Observation] = []
        kind = _ROLE_KIND[role]
        counts = sk.categorical_counts(j)
        n = int(counts.sum())
        total = int(sk.cat_codes[j].sum())
        if n >= min_events:
            # a cyclic signal's frequencies are judged against the phases the window covers
            cal = seasonal.calibrator.threshold if seasonal is not None else self._categorical_cal[j]
            obs, _ = distance_observation(
                kind, name, cal, counts, prof if seasonal is None else seasonal.profile, n
            )
            if seasonal is not None:
                obs.details["seasonality"] = seasonal.details
            out.append(obs)
        if role != "feature" or total < min_events:
            return out
        dq = self.layout.config.data_quality
        if n >= min_events:
            ref_other = prof.counts[-1] / max(prof.count, 1)
            obs = rate_observation(
                AlertKind.COVARIATE_DRIFT,
                name,
                "new_category",
                int(counts[-1]),
                n,
                float(ref_other),
                dq.new_category_warning,
                dq.new_category_critical,
                self.alpha_warning,
                self.alpha_critical,
            )
            new_values = sorted(sk.new_values[j].items(), key=lambda kv: -kv[1])
            obs.details["new_values"] = [{"value": v, "count": c} for v, c in new_values]
            if obs.level is not None and new_values:
                shown = ", ".join(repr(v) for v, _ in new_values[:3])
                obs = _with_message(obs, f"{name}: new categories {shown} in {obs.statistic:.1%} of events")
                # the distance test usually speaks for the signal: it names the new categories too
                out = [
                    _with_message(o, f"{o.message}; new categories {shown} in {obs.statistic:.1%} of events")
                    if o.level is not None and o.detector == cal.statistic
                    else o
                    for o in out
                ]
            out.append(obs)
            out.append(vanished_observation(name, prof, counts, n, self.alpha_warning))
        if dq.enabled:
            codes = sk.cat_codes[j]
            out.extend(
                quality_observations(
                    dq,
                    name,
                    prof,
                    int(codes[1] + codes[2]),
                    int(codes[3]),
                    total,
                    self.alpha_warning,
                    self.alpha_critical,
                )
            )
        return out

    # ---- state ----------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "lifecycle": self.lifecycle.snapshot(),
            "cusums": self.cusums.snapshot()[0],
            "hold": self.cusums.snapshot()[1],
            "windows": [self.windows_tested, self.windows_skipped],
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("v") != SNAPSHOT_VERSION:
            raise SnapshotError(f"unsupported monitor snapshot version {state.get('v')!r}")
        self.lifecycle.restore(state["lifecycle"])
        self.cusums.restore(state["cusums"], state["hold"])
        self.windows_tested, self.windows_skipped = state["windows"]
