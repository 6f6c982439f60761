"""Window statistics as data: one record per tested window and signal, for dashboards and the report.

Every test of every window leaves a record, whether or not it alerted: the statistic, the thresholds it was
compared with, the decision, the window's span and event count. Between two alerts these records say how close
each signal came. The schema is versioned like the alert schema (``stream-monitor.window-stats/v1``).

>>> from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
>>> r = WindowStat.of("m", WindowInfo(0.0, 300.0, 1200), AlertKind.COVARIATE_DRIFT, "age", "psi", 0.04,
...                   0.1, 0.25, None, None, 300.0)
>>> r.decision, encode_window_stat(r)[:50]
('ok', b'{"schema":"stream-monitor.window-stats/v1","model_')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo

SCHEMA: Final = "stream-monitor.window-stats/v1"
# The keys of an observation's details a record keeps (``details``): what the HTML report draws beside the
# statistic. A distance test's window histogram, the performance figures of a judged or estimated window, the
# error stream's rate, a label bucket's coverage and lag; never the larger explanations an alert carries.
RECORDED_DETAILS: Final = (
    "window_counts",
    "metrics",
    "reference",
    "labelled",
    "label_coverage",
    "expected",
    "reference_estimate",
    "reference_accuracy",
    "error_rate",
    "reference_error_rate",
    "lag_p50_seconds",
    "lag_p95_seconds",
    "sla_seconds",
    "min_coverage",
)


def recorded_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``details`` a window-stats record keeps (:data:`RECORDED_DETAILS`), in that order.

    >>> recorded_details({"window_counts": [3, 5], "top_bins": [], "label_coverage": 0.5})
    {'window_counts': [3, 5], 'label_coverage': 0.5}
    """
    return {k: details[k] for k in RECORDED_DETAILS if k in details}


@dataclass(frozen=True, slots=True)
class WindowStat:
    """What one test said of one signal in one window; field order and names are the record's schema."""

    schema: str
    model_id: str
    kind: str
    signal: str
    detector: str
    statistic: float
    warning_threshold: float | None
    critical_threshold: float | None
    p_value: float | None
    decision: str  # ok | warning | critical
    window: WindowInfo
    event_ts: float  # when the test ran, in event time
    details: dict[str, Any] = field(default_factory=dict)  # see RECORDED_DETAILS

    @classmethod
    def of(
        cls,
        model_id: str,
        window: WindowInfo,
        kind: AlertKind,
        signal: str,
        detector: str,
        statistic: float,
        warning: float | None,
        critical: float | None,
        p_value: float | None,
        level: Severity | None,
        event_ts: float,
        details: Mapping[str, Any] | None = None,
    ) -> WindowStat:
        return cls(
            SCHEMA,
            model_id,
            kind.value,
            signal,
            detector,
            float(statistic),
            warning,
            critical,
            p_value,
            "ok" if level is None else level.value,
            window,
            float(event_ts),
            {} if details is None else recorded_details(details),
        )


def encode_window_stat(record: WindowStat) -> bytes:
    """The record's JSON (NaN statistics become null)."""
    return orjson.dumps(record)
