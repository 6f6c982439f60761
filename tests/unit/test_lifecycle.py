"""Alert episodes: fire, escalate, hold with hysteresis, resolve, cool down; ids are deterministic."""

from __future__ import annotations

from stream_monitor.core.alerts import (
    AlertKind,
    Severity,
    Status,
    WindowInfo,
    alert_id_for,
    decode_alert,
    encode_alert,
)
from stream_monitor.pipeline.lifecycle import AlertLifecycle, Observation


def _obs(stat: float, level: Severity | None, signal: str = "x", detector: str = "psi") -> Observation:
    threshold = 0.25 if level is Severity.CRITICAL else 0.1
    return Observation(
        AlertKind.COVARIATE_DRIFT, signal, level, detector, stat, threshold, 0.1, message=f"{signal} {stat}"
    )


def _window(i: int) -> WindowInfo:
    return WindowInfo(i * 10.0, (i + 1) * 10.0, 500)


def test_fire_escalate_hold_resolve() -> None:
    life = AlertLifecycle("m", resolve_after_windows=2, hysteresis=0.8, cooldown_seconds=0)
    events = []
    script = [
        (0.12, Severity.WARNING),
        (0.13, Severity.WARNING),  # already firing: nothing new
        (0.30, Severity.CRITICAL),  # escalation
        (0.09, None),  # below warning but above 0.8 x warning: holds
        (0.05, None),
        (0.04, None),  # second clean window: resolved
    ]
    for i, (stat, level) in enumerate(script):
        events.append(
            [(a.status, a.severity) for a in life.observe(_window(i), [_obs(stat, level)], detected_at=i)]
        )
    assert events == [
        [(Status.FIRING, Severity.WARNING)],
        [],
        [(Status.FIRING, Severity.CRITICAL)],
        [],
        [],
        [(Status.RESOLVED, Severity.CRITICAL)],
    ]


def test_all_events_of_an_episode_share_the_deterministic_id() -> None:
    life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
    a = life.observe(_window(0), [_obs(0.2, Severity.WARNING)], 0)[0]
    b = life.observe(_window(1), [_obs(0.3, Severity.CRITICAL)], 1)[0]
    c = life.observe(_window(2), [_obs(0.0, None)], 2)[0]
    assert a.alert_id == b.alert_id == c.alert_id == alert_id_for("m", AlertKind.COVARIATE_DRIFT, "x", 10.0)
    assert c.message.startswith("x back to normal")
    assert decode_alert(encode_alert(c)) == c


def test_cooldown_suppresses_a_quick_refire() -> None:
    life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=25)
    life.observe(_window(0), [_obs(0.2, Severity.WARNING)], 0)
    life.observe(_window(1), [_obs(0.0, None)], 1)  # resolved at t=20
    assert life.observe(_window(2), [_obs(0.2, Severity.WARNING)], 2) == []  # t=30 < 20 + 25
    assert life.suppressed_by_cooldown == 1
    fired = life.observe(_window(4), [_obs(0.2, Severity.WARNING)], 4)  # t=50: new episode, new id
    assert fired and fired[0].alert_id == alert_id_for("m", AlertKind.COVARIATE_DRIFT, "x", 50.0)


def test_the_strongest_detector_speaks_and_names_the_others() -> None:
    life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
    alerts = life.observe(
        _window(0), [_obs(0.12, Severity.WARNING, detector="cusum"), _obs(0.3, Severity.CRITICAL)], 0
    )
    assert len(alerts) == 1 and alerts[0].detector == "psi"
    assert alerts[0].details["also_flagged_by"] == ["cusum"]


def test_snapshot_restore_keeps_open_episodes() -> None:
    life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
    first = life.observe(_window(0), [_obs(0.2, Severity.WARNING)], 0)[0]
    twin = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
    twin.restore(life.snapshot())
    assert twin.observe(_window(1), [_obs(0.2, Severity.WARNING)], 1) == []  # still the same episode
    resolved = twin.observe(_window(2), [_obs(0.0, None)], 2)[0]
    assert resolved.alert_id == first.alert_id and resolved.status is Status.RESOLVED


def _sequential(level: Severity | None) -> Observation:
    """What the error stream's CUSUM emits: an alarm, or (level None) its recovery verdict."""
    return Observation(
        AlertKind.CONCEPT_DRIFT,
        "performance",
        level,
        "cusum",
        0.0 if level is None else 15.0,
        13.0,
        13.0,
        conclusive=True,
    )


def test_a_conclusive_calm_resolves_at_once_and_a_conclusive_alarm_ignores_the_cooldown() -> None:
    life = AlertLifecycle("m", resolve_after_windows=3, hysteresis=0.8, cooldown_seconds=10_000)
    fired = life.observe(_window(1), [_sequential(Severity.WARNING)], 1.0, event_ts=25.0)
    assert [(a.status, a.event_ts) for a in fired] == [(Status.FIRING, 25.0)]
    resolved = life.observe(_window(2), [_sequential(None)], 2.0)
    assert [a.status for a in resolved] == [Status.RESOLVED]
    # within the cooldown a window test is held back, the sequential test's fresh evidence is not
    window_alarm = Observation(
        AlertKind.CONCEPT_DRIFT, "performance", Severity.WARNING, "accuracy_drop", 0.03, 0.02, 0.02
    )
    assert life.observe(_window(3), [window_alarm], 3.0) == []
    again = life.observe(_window(4), [_sequential(Severity.CRITICAL)], 4.0)
    assert [(a.status, a.severity) for a in again] == [(Status.FIRING, Severity.CRITICAL)]
    assert again[0].alert_id != fired[0].alert_id


def test_windows_judged_late_neither_end_nor_reopen_an_episode_they_predate() -> None:
    life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
    assert life.observe(_window(5), [_sequential(Severity.WARNING)], 1.0)
    # a quiet window of predictions made before the episode began is judged now: it says nothing
    assert life.observe(_window(3), [_obs(0.0, None, "performance")], 2.0) == []
    assert life.firing == {("concept_drift", "performance"): "warning"}
    assert [a.status for a in life.observe(_window(6), [_sequential(None)], 3.0)] == [Status.RESOLVED]
    # a bad window from before the resolution, judged after it, does not open a new episode
    late_alarm = Observation(
        AlertKind.CONCEPT_DRIFT, "performance", Severity.CRITICAL, "accuracy_drop", 0.1, 0.05, 0.02
    )
    assert life.observe(_window(4), [late_alarm], 4.0) == []
    assert life.firing == {}
