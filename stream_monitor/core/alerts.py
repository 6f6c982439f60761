"""The alert event: the one thing stream-monitor emits to the outside world.

The dataclass *is* the wire schema (``stream-monitor.alert/v1``, docs/formats.md): orjson serialises frozen
dataclasses and enums natively, so what a test builds is byte-for-byte what goes on the topic.

>>> a = Alert.build(model_id="churn-v3", kind=AlertKind.COVARIATE_DRIFT, signal="age",
...     severity=Severity.WARNING, status=Status.FIRING, detector="psi", statistic=0.13, threshold=0.1,
...     window=WindowInfo(1000.0, 1300.0, 5000), episode_start_ts=1300.0, detected_at=1301.5,
...     message="age shifted")
>>> a.alert_id == alert_id_for("churn-v3", AlertKind.COVARIATE_DRIFT, "age", 1300.0)
True
>>> decode_alert(encode_alert(a)) == a
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

SCHEMA = "stream-monitor.alert/v1"


class AlertKind(StrEnum):
    COVARIATE_DRIFT = "covariate_drift"
    MULTIVARIATE_DRIFT = "multivariate_drift"
    PREDICTION_DRIFT = "prediction_drift"
    CONCEPT_DRIFT = "concept_drift"
    SCHEMA_DRIFT = "schema_drift"
    DATA_QUALITY = "data_quality"
    TRAINING_SERVING_SKEW = "training_serving_skew"
    LABEL_LAG = "label_lag"
    LATENCY = "latency"
    VOLUME = "volume"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.WARNING else 2


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class WindowInfo:
    start_ts: float
    end_ts: float
    events: int


def alert_id_for(model_id: str, kind: AlertKind, signal: str, episode_start_ts: float) -> str:
    """Deterministic id of one alert episode, so a worker that re-detects it after a restart does not page twice."""
    key = f"{model_id}\x1f{kind.value}\x1f{signal}\x1f{episode_start_ts:.6f}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert event; field order and names are the wire schema (docs/formats.md)."""

    schema: str
    alert_id: str
    model_id: str
    kind: AlertKind
    signal: str
    severity: Severity
    status: Status
    detector: str
    statistic: float
    threshold: float
    p_value: float | None
    window: WindowInfo
    event_ts: float
    detected_at: float
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def build(
        cls,
        *,
        model_id: str,
        kind: AlertKind,
        signal: str,
        severity: Severity,
        status: Status,
        detector: str,
        statistic: float,
        threshold: float,
        window: WindowInfo,
        episode_start_ts: float,
        detected_at: float,
        message: str,
        p_value: float | None = None,
        details: dict[str, Any] | None = None,
        event_ts: float | None = None,
    ) -> Alert:
        """An alert; ``event_ts`` defaults to the window's end."""
        return cls(
            schema=SCHEMA,
            alert_id=alert_id_for(model_id, kind, signal, episode_start_ts),
            model_id=model_id,
            kind=kind,
            signal=signal,
            severity=severity,
            status=status,
            detector=detector,
            statistic=float(statistic),
            threshold=float(threshold),
            p_value=p_value,
            window=window,
            event_ts=window.end_ts if event_ts is None else event_ts,
            detected_at=detected_at,
            details=details or {},
            message=message,
        )


def encode_alert(alert: Alert) -> bytes:
    """The alert as one JSON object (no trailing newline)."""
    return orjson.dumps(alert, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_alert(data: bytes | str) -> Alert:
    """Parse an alert event written by :func:`encode_alert` (used by tests and by consumers in Python)."""
    raw = orjson.loads(data)
    if raw.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} event: schema={raw.get('schema')!r}")
    window = raw.pop("window")
    return Alert(
        **{
            **raw,
            "kind": AlertKind(raw["kind"]),
            "severity": Severity(raw["severity"]),
            "status": Status(raw["status"]),
            "window": WindowInfo(**window),
        }
    )


RETRAINING_SCHEMA = "stream-monitor.retraining-request/v1"


@dataclass(frozen=True, slots=True)
class RetrainingRequest:
    """Published once when concept drift turns critical, for a training pipeline to subscribe to."""

    schema: str
    request_id: str  # the alert id of the episode: one request per episode
    model_id: str
    window: WindowInfo
    event_ts: float
    requested_at: float
    reason: str
    evidence: dict[str, Any]

    @classmethod
    def from_alert(cls, alert: Alert) -> RetrainingRequest:
        return cls(
            schema=RETRAINING_SCHEMA,
            request_id=alert.alert_id,
            model_id=alert.model_id,
            window=alert.window,
            event_ts=alert.event_ts,
            requested_at=alert.detected_at,
            reason=alert.message,
            evidence={
                "kind": alert.kind.value,
                "signal": alert.signal,
                "detector": alert.detector,
                "statistic": alert.statistic,
                "threshold": alert.threshold,
                **alert.details,
            },
        )


def retraining_requests(alerts: list[Alert]) -> list[RetrainingRequest]:
    """A request for every concept-drift alert that fires at critical severity (at most one per episode)."""
    return [
        RetrainingRequest.from_alert(a)
        for a in alerts
        if a.kind is AlertKind.CONCEPT_DRIFT and a.severity is Severity.CRITICAL and a.status is Status.FIRING
    ]


def format_alert(a: Alert) -> str:
    """One line for a terminal: the event time (UTC) in brackets, the severity, model, kind, signal, message.

    >>> a = Alert.build(model_id="m", kind=AlertKind.CONCEPT_DRIFT, signal="performance",
    ...     severity=Severity.CRITICAL, status=Status.FIRING, detector="cusum", statistic=20.0, threshold=18.0,
    ...     window=WindowInfo(0.0, 60.0, 40), episode_start_ts=60.0, detected_at=61.0, message="worse")
    >>> format_alert(a)
    '[00:01:00] CRITICAL m concept_drift      performance            worse'
    """
    when = datetime.fromtimestamp(a.event_ts, tz=UTC).strftime("%H:%M:%S")
    badge = "RESOLVED" if a.status is Status.RESOLVED else a.severity.value.upper()
    return f"[{when}] {badge:<8} {a.model_id} {a.kind.value:<18} {a.signal:<22} {a.message}"
