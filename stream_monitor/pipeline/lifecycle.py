"""Alert lifecycle: turn per-window observations into firing / escalated / resolved alert events.

One *episode* per (kind, signal), and one per feature for the kinds of a feature's own checks
(``covariate_drift``, ``data_quality``, ``schema_drift``: one cause seen by several detectors raises one alert,
:mod:`stream_monitor.pipeline.alert_merging`). The episode fires when any of its detectors crosses a level,
with the kind that names the cause in that window (kept for the episode, as its ``alert_id`` depends on it),
escalates from warning to critical as a new event with the same ``alert_id``, and resolves after
``resolve_after_windows`` clean windows in a row (clean = every statistic below ``hysteresis`` x its warning
level, so a statistic hovering at the threshold does not flap). After resolving, the signal may not fire
again for ``cooldown_seconds`` of event time. All time here is event time, so a replay reproduces the service.

A *conclusive* observation is a verdict backed by its own evidence: a firing one (the error stream's CUSUM,
which restarted from zero and found fresh evidence) is not held back by the cooldown, and a calm one (labels
that refute an estimate) resolves the episode at once. Windows are judged in the order their data
became ready, which for late labels is not the order of their spans: a window that ended before an episode
began says nothing about whether it is over, and one that ended before the episode resolved cannot reopen it.

>>> from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
>>> life = AlertLifecycle("m", resolve_after_windows=1, hysteresis=0.8, cooldown_seconds=0)
>>> hot = Observation(AlertKind.COVARIATE_DRIFT, "x", Severity.WARNING, "psi", 0.2, 0.1, 0.1)
>>> cold = Observation(AlertKind.COVARIATE_DRIFT, "x", None, "psi", 0.01, 0.1, 0.1)
>>> [a.status.value for a in life.observe(WindowInfo(0, 10, 100), [hot], detected_at=1.0)]
['firing']
>>> [a.status.value for a in life.observe(WindowInfo(10, 20, 100), [cold], detected_at=2.0)]
['resolved']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream_monitor.core.alerts import Alert, AlertKind, Severity, Status, WindowInfo
from stream_monitor.pipeline.alert_merging import Merged, episode_key, merge
from stream_monitor.pipeline.observation import Observation

__all__ = ["AlertLifecycle", "Observation"]


@dataclass
class _Episode:
    kind: AlertKind  # the kind it fired with (named the cause when it opened); its alert_id depends on it
    severity: Severity | None = None  # None: not firing
    start_ts: float = 0.0
    clean_windows: int = 0
    resolved_at: float | None = None


class AlertLifecycle:
    def __init__(
        self, model_id: str, resolve_after_windows: int, hysteresis: float, cooldown_seconds: float
    ) -> None:
        if resolve_after_windows < 1:
            raise ValueError("resolve_after_windows must be >= 1")
        if not 0 < hysteresis <= 1:
            raise ValueError("hysteresis must be in (0, 1]")
        self.model_id = model_id
        self.resolve_after_windows = resolve_after_windows
        self.hysteresis = hysteresis
        self.cooldown_seconds = cooldown_seconds
        self._episodes: dict[tuple[str, str], _Episode] = {}  # alert_merging.episode_key -> episode
        self.suppressed_by_cooldown = 0

    @property
    def firing(self) -> dict[tuple[str, str], str]:
        """(kind, signal) -> severity of every open episode."""
        return {
            (e.kind.value, s): e.severity.value
            for (_, s), e in self._episodes.items()
            if e.severity is not None
        }

    def observe(
        self,
        window: WindowInfo,
        observations: Iterable[Observation],
        detected_at: float,
        event_ts: float | None = None,
    ) -> list[Alert]:
        """The alerts the observations of one window raise; ``event_ts`` (default: the window's end) is the
        event time at which they were detected."""
        grouped: dict[tuple[str, str], list[Observation]] = {}
        for obs in observations:
            grouped.setdefault(episode_key(obs.kind, obs.signal), []).append(obs)
        alerts: list[Alert] = []
        for key, group in grouped.items():
            episode = self._episodes.setdefault(key, _Episode(group[0].kind))
            alert = self._step(episode, group, window, detected_at, event_ts)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _step(
        self,
        ep: _Episode,
        group: list[Observation],
        window: WindowInfo,
        detected_at: float,
        event_ts: float | None,
    ) -> Alert | None:
        merged = merge(group)
        top, level = merged.top, merged.top.level
        stale = ep.resolved_at is not None and window.end_ts <= ep.resolved_at
        if level is not None and not (ep.severity is None and stale):
            ep.clean_windows = 0
            if ep.severity is None:
                cooling = (
                    ep.resolved_at is not None and window.end_ts - ep.resolved_at < self.cooldown_seconds
                )
                if cooling and not top.conclusive:
                    self.suppressed_by_cooldown += 1
                    return None
                ep.kind, ep.severity, ep.start_ts = merged.kind, level, window.end_ts
                return self._alert(merged, level, Status.FIRING, ep, window, detected_at, event_ts)
            if level.rank > ep.severity.rank:
                ep.severity = level
                return self._alert(merged, level, Status.FIRING, ep, window, detected_at, event_ts)
            return None
        if ep.severity is None or level is not None or window.end_ts < ep.start_ts:
            return None
        calm = all(o.statistic < self.hysteresis * o.warning_threshold for o in group)
        ep.clean_windows = ep.clean_windows + 1 if calm else 0
        if ep.clean_windows < self.resolve_after_windows and not (calm and top.conclusive):
            return None
        severity = ep.severity
        ep.severity, ep.resolved_at, ep.clean_windows = None, window.end_ts, 0
        return self._alert(merged, severity, Status.RESOLVED, ep, window, detected_at, event_ts)

    def _alert(
        self,
        merged: Merged,
        severity: Severity,
        status: Status,
        ep: _Episode,
        window: WindowInfo,
        detected_at: float,
        event_ts: float | None,
    ) -> Alert:
        obs = merged.top
        if status is Status.RESOLVED:
            message = (
                f"{obs.signal} back to normal: {obs.detector} {obs.statistic:.4g} "
                f"(warning level {obs.warning_threshold:.4g})"
            )
            details = obs.full_details()
        else:
            message, details = merged.message, merged.details()
        return Alert.build(
            model_id=self.model_id,
            kind=ep.kind,
            signal=obs.signal,
            severity=severity,
            status=status,
            detector=obs.detector,
            statistic=obs.statistic,
            threshold=obs.threshold,
            p_value=obs.p_value,
            window=window,
            episode_start_ts=ep.start_ts,
            detected_at=detected_at,
            details=details,
            message=message,
            event_ts=event_ts,
        )

    # ---- snapshots -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "suppressed": self.suppressed_by_cooldown,
            "episodes": [
                {
                    "kind": ep.kind.value,
                    "signal": signal,
                    "severity": ep.severity.value if ep.severity else None,
                    "start_ts": ep.start_ts,
                    "clean": ep.clean_windows,
                    "resolved_at": ep.resolved_at,
                }
                for (_, signal), ep in self._episodes.items()
                if ep.severity is not None or ep.resolved_at is not None
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.suppressed_by_cooldown = int(state.get("suppressed", 0))
        self._episodes = {}
        for e in state.get("episodes", []):
            ep = _Episode(
                AlertKind(e["kind"]),
                severity=Severity(e["severity"]) if e["severity"] else None,
                start_ts=float(e["start_ts"]),
                clean_windows=int(e["clean"]),
                resolved_at=e["resolved_at"],
            )
            key = episode_key(ep.kind, e["signal"])
            # A snapshot from before merging may hold several episodes of one feature: keep the open one that
            # fired first (its id went out first).
            held = self._episodes.get(key)
            if held is None or _precedes(ep, held):
                self._episodes[key] = ep


def _precedes(a: _Episode, b: _Episode) -> bool:
    if (a.severity is None) != (b.severity is None):
        return a.severity is not None
    return a.start_ts < b.start_ts
