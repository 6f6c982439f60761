"""The window-statistics records of a tested window: one per observation, built the same way for replay's
``--stats-out`` and for the service's ``topics.window_stats``."""

from __future__ import annotations

from stream_monitor.core.alerts import Severity
from stream_monitor.core.window_stats import WindowStat
from stream_monitor.pipeline.model_merge import TestedWindow


def window_stat_records(tested: TestedWindow) -> list[WindowStat]:
    """What each test of ``tested`` said (empty for a window summarised below ``min_events``)."""
    if not tested.tested:
        return []
    event_ts = tested.info.end_ts if tested.event_ts is None else tested.event_ts
    out: list[WindowStat] = []
    for o in tested.observations:
        thresholds = o.details.get("thresholds")
        critical = (
            float(thresholds["critical"])
            if isinstance(thresholds, dict) and "critical" in thresholds
            else (o.threshold if o.level is Severity.CRITICAL else None)
        )
        out.append(
            WindowStat.of(
                tested.model,
                tested.info,
                o.kind,
                o.signal,
                o.detector,
                o.statistic,
                o.warning_threshold,
                critical,
                o.p_value,
                o.level,
                event_ts,
                o.details,
            )
        )
    return out
