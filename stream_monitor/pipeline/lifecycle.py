"""Alert lifecycle: turn per-window observations into firing / escalated / resolved alert events.

One *episode* per (kind, signal): it fires when any detector of that signal crosses a level, escalates from
warning to critical as a new event with the same ``alert_id``, and resolves after ``resolve_after_windows``
clean windows in a row (clean = every statistic below ``hysteresis`` x its warning level, so a statistic
hovering at the threshold does not flap). After resolving, the signal may not fire again for
``cooldown_seconds`` of event time. All time here is event time, so a replay reproduces the service.

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

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stream_monitor.core.alerts import Alert, AlertKind, Severity, Status, WindowInfo


@dataclass(frozen=True)
class Observation:
    """What one detector saw on one signal in one window."""

    kind: AlertKind
    signal: str
    level: Severity | None  # None: below the warning level
    detector: str
    statistic: float
    threshold: float  # the level's threshold (the warning threshold when level is None)
    warning_threshold: float
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    # More details, built only when the observation becomes an alert: most windows of most signals are quiet,
    # and describing what moved costs more than testing whether anything did.
    explain: Callable[[], dict[str, Any]] | None = field(default=None, compare=False, repr=False)
    conclusive: bool = False  # a sequential verdict: see the module docstring

    @property
    def clean(self) -> bool:
        return self.level is None

    def full_details(self) -> dict[str, Any]:
        return {**self.explain(), **self.details} if self.explain is not None else self.details


@dataclass
class _Episode:
    severity: Severity | None = None  # None: not firing
    start_ts: float = 0.0
    clean_windows: int = 0
    resolved_at: float | None = None


def _pick(observations: list[Observation]) -> Observation:
    """The observation that speaks for the signal: highest level, then largest statistic over threshold."""
    return max(
        observations,
        key=lambda o: (o.level.rank if o.level else 0, o.statistic / o.threshold if o.threshold else 0.0),
    )


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
        self._episodes: dict[tuple[AlertKind, str], _Episode] = {}
        self.suppressed_by_cooldown = 0

    @property
    def firing(self) -> dict[tuple[str, str], str]:
        """(kind, signal) -> severity of every open episode."""
        return {
            (k.value, s): e.severity.value for (k, s), e in self._episodes.items() if e.severity is not None
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
        grouped: dict[tuple[AlertKind, str], list[Observation]] = {}
        for obs in observations:
            grouped.setdefault((obs.kind, obs.signal), []).append(obs)
        alerts: list[Alert] = []
        for key, group in grouped.items():
            episode = self._episodes.setdefault(key, _Episode())
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
        top = _pick(group)
        level = top.level
        stale = ep.resolved_at is not None and window.end_ts <= ep.resolved_at
        if level is not None and not (ep.severity is None and stale):
            if len(group) > 1:
                others = [o.detector for o in group if o.level is not None and o is not top]
                if others:
                    top = dataclasses.replace(top, details={**top.details, "also_flagged_by": others})
            ep.clean_windows = 0
            if ep.severity is None:
                cooling = (
                    ep.resolved_at is not None and window.end_ts - ep.resolved_at < self.cooldown_seconds
                )
                if cooling and not top.conclusive:
                    self.suppressed_by_cooldown += 1
                    return None
                ep.severity, ep.start_ts = level, window.end_ts
                return self._alert(top, level, Status.FIRING, ep, window, detected_at, event_ts)
            if level.rank > ep.severity.rank:
                ep.severity = level
                return self._alert(top, level, Status.FIRING, ep, window, detected_at, event_ts)
            return None
        if ep.severity is None or level is not None or window.end_ts < ep.start_ts:
            return None
        calm = all(o.statistic < self.hysteresis * o.warning_threshold for o in group)
        ep.clean_windows = ep.clean_windows + 1 if calm else 0
        if ep.clean_windows < self.resolve_after_windows and not (calm and top.conclusive):
            return None
        severity = ep.severity
        ep.severity, ep.resolved_at, ep.clean_windows = None, window.end_ts, 0
        return self._alert(top, severity, Status.RESOLVED, ep, window, detected_at, event_ts)

    def _alert(
        self,
        obs: Observation,
        severity: Severity,
        status: Status,
        ep: _Episode,
        window: WindowInfo,
        detected_at: float,
        event_ts: float | None,
    ) -> Alert:
        message = obs.message
        if status is Status.RESOLVED:
            message = (
                f"{obs.signal} back to normal: {obs.detector} {obs.statistic:.4g} "
                f"(warning level {obs.warning_threshold:.4g})"
            )
        return Alert.build(
            model_id=self.model_id,
            kind=obs.kind,
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
            details=obs.full_details(),
            message=message,
            event_ts=event_ts,
        )

    # ---- snapshots -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "suppressed": self.suppressed_by_cooldown,
            "episodes": [
                {
                    "kind": kind.value,
                    "signal": signal,
                    "severity": ep.severity.value if ep.severity else None,
                    "start_ts": ep.start_ts,
                    "clean": ep.clean_windows,
                    "resolved_at": ep.resolved_at,
                }
                for (kind, signal), ep in self._episodes.items()
                if ep.severity is not None or ep.resolved_at is not None
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.suppressed_by_cooldown = int(state.get("suppressed", 0))
        self._episodes = {
            (AlertKind(e["kind"]), e["signal"]): _Episode(
                severity=Severity(e["severity"]) if e["severity"] else None,
                start_ts=float(e["start_ts"]),
                clean_windows=int(e["clean"]),
                resolved_at=e["resolved_at"],
            )
            for e in state.get("episodes", [])
        }
