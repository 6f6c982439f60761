"""One alert per cause: the detectors of one feature share one episode, whose kind names the cause."""

from __future__ import annotations

from typing import Any

from stream_monitor.core.alerts import AlertKind, Severity, Status, WindowInfo, alert_id_for
from stream_monitor.pipeline.alert_merging import episode_key, merge
from stream_monitor.pipeline.lifecycle import AlertLifecycle, Observation

COV, DQ, SCHEMA = AlertKind.COVARIATE_DRIFT, AlertKind.DATA_QUALITY, AlertKind.SCHEMA_DRIFT
W, C = Severity.WARNING, Severity.CRITICAL


def _psi(
    stat: float, level: Severity | None, signal: str = "x", cause: AlertKind | None = None
) -> Observation:
    threshold = 0.25 if level is C else 0.1
    return Observation(
        COV, signal, level, "psi", stat, threshold, 0.1, message=f"{signal} shifted: PSI {stat}", cause=cause
    )


def _rate(
    detector: str, share: float, level: Severity | None, kind: AlertKind = DQ, cause: AlertKind | None = None
) -> Observation:
    threshold = 0.05 if level is C else 0.01
    return Observation(
        kind, "x", level, detector, share, threshold, 0.01, 1e-9, {"count": 1}, f"x: {share:.0%} {detector}",
        cause=cause,
    )  # fmt: skip


def _window(i: int) -> WindowInfo:
    return WindowInfo(i * 10.0, (i + 1) * 10.0, 500)


def _life(**kw: Any) -> AlertLifecycle:
    return AlertLifecycle("m", **{"resolve_after_windows": 1, "hysteresis": 0.8, "cooldown_seconds": 0, **kw})


def test_two_detectors_firing_on_one_feature_make_one_alert_that_carries_both() -> None:
    alerts = _life().observe(_window(0), [_psi(0.17, W), _rate("out_of_range", 0.08, C)], detected_at=0)
    assert len(alerts) == 1
    a = alerts[0]
    # the strongest (critical before warning) speaks; the range problem names the kind
    assert (a.kind, a.detector, a.severity, a.statistic) == (DQ, "out_of_range", C, 0.08)
    assert a.alert_id == alert_id_for("m", DQ, "x", 10.0)
    assert a.details["count"] == 1  # the headline's own details
    assert a.details["also"] == [
        {
            "kind": "covariate_drift",
            "detector": "psi",
            "statistic": 0.17,
            "threshold": 0.1,
            "severity": "warning",
            "message": "x shifted: PSI 0.17",
        }
    ]
    assert a.details["also_flagged_by"] == ["psi"]


def test_out_of_range_values_that_a_stretch_explains_are_covariate_drift() -> None:
    a = _life().observe(_window(0), [_psi(0.17, W), _rate("out_of_range", 0.02, W, cause=COV)], 0)
    assert [(x.kind, x.detector) for x in a] == [(COV, "out_of_range")]  # 0.02 / 0.01 is further over
    assert a[0].alert_id == alert_id_for("m", COV, "x", 10.0)
    assert [x["detector"] for x in a[0].details["also"]] == ["psi"]


def test_a_data_problem_names_the_kind_and_its_line_joins_the_headline() -> None:
    m = merge([_psi(0.6, C), _rate("null_rate", 0.3, W), _psi(0.01, None, signal="x")])
    assert (m.kind, m.top.detector) == (DQ, "psi")
    assert m.message == "x shifted: PSI 0.6; x: 30% null_rate"
    assert [o.detector for o in m.also] == ["null_rate"]  # the calm test is not carried


def test_wrong_types_keep_their_kind_and_a_unit_change_names_data_quality() -> None:
    typed = merge([_psi(0.3, C), _rate("wrong_type", 0.02, W, kind=SCHEMA)])
    assert typed.kind is SCHEMA
    rescaled = merge([_psi(9.0, C, cause=DQ), Observation(COV, "x", W, "cusum", 20.0, 10.0, 10.0)])
    assert (rescaled.kind, rescaled.top.detector) == (DQ, "psi")


def test_an_alert_that_is_not_merged_keeps_its_kind_id_and_details() -> None:
    life = _life()
    alone = life.observe(_window(0), [_rate("null_rate", 0.3, W), _psi(0.01, None)], 0)
    assert [(a.kind, a.detector) for a in alone] == [(DQ, "null_rate")]
    assert alone[0].alert_id == alert_id_for("m", DQ, "x", 10.0)
    assert "also" not in alone[0].details and alone[0].message == "x: 30% null_rate"


def test_the_merged_alert_is_one_episode_from_firing_to_resolved_and_cooldown() -> None:
    life = _life(resolve_after_windows=2, cooldown_seconds=25)
    unexplained = _rate("out_of_range", 0.02, W)
    script: list[list[Observation]] = [
        [_psi(0.15, W), _rate("out_of_range", 0.0, None)],  # opens a covariate episode
        [_psi(0.15, W), unexplained],  # a range problem at the same level: nothing new
        [_psi(0.05, None), _rate("out_of_range", 0.09, C)],  # escalates the same episode, kind kept
        [_psi(0.01, None), _rate("out_of_range", 0.0, None)],
        [_psi(0.01, None), _rate("out_of_range", 0.0, None)],  # second clean window: resolved
        [_psi(0.01, None), _rate("null_rate", 0.3, W)],  # another detector, within the cooldown: held back
    ]
    events = [life.observe(_window(i), obs, detected_at=i) for i, obs in enumerate(script)]
    flat = [(i, a.status, a.severity, a.kind, a.detector) for i, e in enumerate(events) for a in e]
    assert flat == [
        (0, Status.FIRING, W, COV, "psi"),
        (2, Status.FIRING, C, COV, "out_of_range"),
        (4, Status.RESOLVED, C, COV, "psi"),
    ]
    assert len({a.alert_id for e in events for a in e}) == 1
    assert life.suppressed_by_cooldown == 1


def test_a_feature_is_not_merged_with_the_model_level_schema_or_another_signal() -> None:
    unknown = Observation(SCHEMA, "schema", W, "unknown_fields", 0.05, 0.01, 0.01)
    alerts = _life().observe(
        _window(0), [unknown, _rate("wrong_type", 0.02, W, kind=SCHEMA), _psi(0.2, W, signal="y")], 0
    )
    assert sorted((a.kind.value, a.signal, a.detector) for a in alerts) == [
        ("covariate_drift", "y", "psi"),
        ("schema_drift", "schema", "unknown_fields"),
        ("schema_drift", "x", "wrong_type"),
    ]
    assert episode_key(SCHEMA, "schema") != episode_key(SCHEMA, "x") == episode_key(COV, "x")
    assert episode_key(AlertKind.PREDICTION_DRIFT, "x") != episode_key(COV, "x")


def test_a_snapshot_keeps_the_episode_kind() -> None:
    life = _life()
    first = life.observe(_window(0), [_psi(0.2, W), _rate("null_rate", 0.3, C)], 0)[0]
    twin = _life()
    twin.restore(life.snapshot())
    assert twin.firing == {("data_quality", "x"): "critical"}
    resolved = twin.observe(_window(1), [_psi(0.0, None), _rate("null_rate", 0.0, None)], 1)
    assert [(a.status, a.kind, a.alert_id) for a in resolved] == [(Status.RESOLVED, DQ, first.alert_id)]


def test_a_snapshot_from_before_merging_restores_one_episode_per_feature() -> None:
    """Earlier versions kept an episode per (kind, signal): a feature could have two open at once. The one
    that fired first is kept (its id went out first); a resolved one never displaces an open one."""
    episode = {"severity": "warning", "clean": 0, "resolved_at": None}
    life = _life()
    life.restore(
        {
            "suppressed": 0,
            "episodes": [
                {**episode, "kind": "data_quality", "signal": "x", "start_ts": 20.0},
                {**episode, "kind": "covariate_drift", "signal": "x", "start_ts": 10.0},
                {**episode, "kind": "covariate_drift", "signal": "y", "severity": None, "resolved_at": 5.0,
                 "start_ts": 0.0},
                {**episode, "kind": "data_quality", "signal": "y", "start_ts": 30.0},
            ],
        }
    )  # fmt: skip
    assert life.firing == {("covariate_drift", "x"): "warning", ("data_quality", "y"): "warning"}
    resolved = life.observe(_window(3), [_psi(0.0, None), _rate("null_rate", 0.0, None)], 3)
    assert [(a.kind, a.alert_id) for a in resolved] == [(COV, alert_id_for("m", COV, "x", 10.0))]
