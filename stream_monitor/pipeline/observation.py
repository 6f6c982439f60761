"""What one detector saw on one signal in one window: the unit the checks produce and the lifecycle consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stream_monitor.core.alerts import AlertKind, Severity


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
    conclusive: bool = False  # a sequential verdict: see stream_monitor.pipeline.lifecycle
    # The kind that names what this observation shows, when detection knows better than the detector's own
    # kind (stream_monitor.pipeline.alert_merging): out-of-range values that a shifted or stretched
    # distribution explains name covariate_drift; a distance test on rescaled values names data_quality.
    cause: AlertKind | None = None

    @property
    def clean(self) -> bool:
        return self.level is None

    @property
    def names(self) -> AlertKind:
        """The kind this observation's cause is reported under."""
        return self.kind if self.cause is None else self.cause

    def full_details(self) -> dict[str, Any]:
        return {**self.explain(), **self.details} if self.explain is not None else self.details
