"""The label-free estimate (CBPE) only speaks where the reference supports it, and labels that show no drop
resolve what it said."""

from __future__ import annotations

import dataclasses

import numpy as np

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import Severity, Status, WindowInfo
from stream_monitor.pipeline.lifecycle import AlertLifecycle
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.performance_judge import ESTIMATE_SIGNAL, PerformanceBucket, PerformanceJudge
from stream_monitor.stats.performance import PerformanceSketch
from stream_monitor.stats.profiles import ModelProfile
from tests import service_support as ss


def _judge(profile: ModelProfile | None = None) -> PerformanceJudge:
    profile = profile or ss.concept_profile().models[ss.MODEL]
    cfg = parse_config({"models": {ss.MODEL: ss.concept_model_config()}}).models[ss.MODEL]
    return PerformanceJudge(ModelLayout.build(ss.MODEL, cfg, profile), "binary", 1e-4, 1e-5, [], [])


def _bucket(n: int, score: float, accuracy: float) -> PerformanceBucket:
    rng = np.random.default_rng(1)
    predicted = np.ones(n)
    labels = (rng.random(n) < accuracy).astype(np.float64)
    sketch = PerformanceSketch("binary")
    sketch.fold_predictions(predicted, np.full(n, score))
    sketch.fold(predicted, np.full(n, score), labels)
    return PerformanceBucket(sketch)


def test_an_estimate_compares_with_the_references_own_estimate() -> None:
    judge = _judge()
    assert judge.cbpe_baseline() == judge.reference["expected_accuracy"]
    [obs] = judge.estimate(_bucket(2000, 0.6, 0.6))  # scores say 60 % right; the reference expects about 80 %
    assert (
        obs.signal == ESTIMATE_SIGNAL and obs.level is Severity.CRITICAL and obs.details["estimate"] is True
    )
    assert "an estimate" in obs.message


def test_no_estimate_from_too_few_predictions_or_a_reference_whose_scores_are_not_calibrated() -> None:
    assert _judge().estimate(_bucket(150, 0.6, 0.6)) == []
    profile = ss.concept_profile().models[ss.MODEL]
    assert profile.labels is not None
    performance = {
        **profile.labels.performance,
        "expected_accuracy": profile.labels.performance["accuracy"] + 0.1,
    }
    miscalibrated = dataclasses.replace(
        profile, labels=dataclasses.replace(profile.labels, performance=performance)
    )
    judge = _judge(miscalibrated)
    assert judge.cbpe_baseline() is None
    assert judge.estimate(_bucket(2000, 0.6, 0.6)) == []


def test_labels_that_show_no_drop_resolve_the_estimate() -> None:
    judge = _judge()
    bucket = _bucket(2000, 0.6, 0.8)  # the scores look bad, the labels are fine
    life = AlertLifecycle(ss.MODEL, resolve_after_windows=3, hysteresis=0.8, cooldown_seconds=0)
    window = WindowInfo(0.0, 10.0, 2000)
    fired = life.observe(window, judge.estimate(bucket), 1.0)
    assert [(a.signal, a.status) for a in fired] == [(ESTIMATE_SIGNAL, Status.FIRING)]
    verdict = judge.judge(bucket, coverage=1.0)
    assert [o.level for o in verdict if o.signal == "performance"] == [None]
    resolved = life.observe(window, verdict, 2.0)
    assert [(a.signal, a.status) for a in resolved] == [(ESTIMATE_SIGNAL, Status.RESOLVED)]
