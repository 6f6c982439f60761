"""The one frozen, validated config tree.

One piece on purpose: the models nest into one tree that reads top to bottom as the reference of every key
(docs/configuration.md follows it), and a test walks it to keep that document complete.

Pydantic models with ``extra="forbid"`` so a misspelled key is reported with its path, ``Literal``
enumerations, ``SecretStr`` for credentials. :mod:`stream_monitor.config.loading` reads YAML files into them
(``yaml.safe_load``'s semantics: a ``!!python`` tag is an error, not code) and reports every problem at once,
each with its path, line and closest valid key (:class:`~stream_monitor.core.errors.ConfigError`).

>>> cfg = MonitorConfig.model_validate({"models": {"m": {"reference": "ref.json"}}})
>>> cfg.models["m"].window.max_events, cfg.models["m"].thresholds
(5000, 'calibrated')
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

StatisticName = Literal["psi", "js", "ks", "wasserstein", "chi2"]

# Effect-size floors per statistic: (warning, critical). In calibrated mode a threshold is the larger of this
# floor and the no-drift quantile for the window's size at the model's false-alarm budget; in fixed mode these
# are the thresholds. PSI 0.1 / 0.25 are the industry's usual figures.
DEFAULT_FLOORS: dict[str, tuple[float, float]] = {
    "psi": (0.1, 0.25),
    "js": (0.1, 0.2),
    "ks": (0.1, 0.2),
    "wasserstein": (0.1, 0.25),
    "chi2": (0.1, 0.25),
}

_SECRET_KEY = re.compile(r"(password|secret|token|key)$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftTest(_Strict):
    """A distance test on one signal's window histogram against the reference."""

    statistic: StatisticName = "psi"
    warning: float | None = Field(default=None, gt=0, description="floor (calibrated) or threshold (fixed)")
    critical: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DriftTest:
        w, c = self.levels()
        if c < w:
            raise ValueError(f"critical ({c}) must not be below warning ({w})")
        return self

    def levels(self) -> tuple[float, float]:
        floor_w, floor_c = DEFAULT_FLOORS[self.statistic]
        w = self.warning if self.warning is not None else floor_w
        c = self.critical if self.critical is not None else max(floor_c, w)
        return w, c


class SeasonalityConfig(_Strict):
    """A recurring cycle: each window is compared with the reference's profile of the phases it covers."""

    period_seconds: float = Field(gt=0, description="length of the cycle; the reference must have its phases")
    phases: int = Field(
        default=24, ge=1, le=10_000, description="equal parts of the cycle with a profile each"
    )


def _off(raw: Any) -> Any:
    """YAML reads a bare ``off`` as false: both mean "no seasonality"."""
    return "off" if raw is False else raw


Seasonality = Annotated[SeasonalityConfig | Literal["off"] | None, BeforeValidator(_off)]


def _distinct_periods(raw: Any) -> Any:
    if isinstance(raw, list):
        periods = [c.period_seconds for c in raw]
        if not periods or len(set(periods)) != len(periods):
            raise ValueError("a list of cycles needs one or more, of distinct period_seconds")
    return raw


# the predictions inherit every cycle of their features: one cycle, or several judged jointly
OutcomeSeasonality = Annotated[
    SeasonalityConfig | list[SeasonalityConfig] | Literal["off"] | None,
    BeforeValidator(_off),
    AfterValidator(_distinct_periods),
]


class FeatureConfig(_Strict):
    enabled: bool = True
    test: DriftTest | None = Field(
        default=None, description="the feature's own test; default_test when absent"
    )
    sequential: bool = True
    seasonality: Seasonality = Field(
        default=None, description="this feature's cycle, or off; the model's when absent"
    )


class SequentialConfig(_Strict):
    """Two-sided CUSUM on each numeric signal's standardised window mean, for slow ramps."""

    enabled: bool = True
    min_effect_sd: float = Field(
        default=0.05, ge=0, description="ignore mean shifts smaller than this (in sd)"
    )


class MultivariateConfig(_Strict):
    """Pairwise correlation changes that leave every marginal unchanged (see stats/correlation.py)."""

    enabled: bool = True
    min_change_warning: float = Field(
        default=0.15, gt=0, le=2, description="smallest |change| of a correlation"
    )
    min_change_critical: float = Field(default=0.3, gt=0, le=2)


class PredictionConfig(_Strict):
    enabled: bool = True
    test: DriftTest = DriftTest()
    seasonality: OutcomeSeasonality = Field(
        default=None,
        description="the cycle (or a list of cycles, judged jointly) the score and prediction are judged by "
        "(they inherit their features'), or off; the model's when absent",
    )


class DataQualityConfig(_Strict):
    enabled: bool = True
    null_rate_warning: float = Field(
        default=0.05, gt=0, le=1, description="rise in null share over reference"
    )
    null_rate_critical: float = Field(default=0.2, gt=0, le=1)
    wrong_type_warning: float = Field(
        default=0.01, gt=0, le=1, description="share of values of the wrong type"
    )
    wrong_type_critical: float = Field(default=0.05, gt=0, le=1)
    new_category_warning: float = Field(
        default=0.01, gt=0, le=1, description="share of values unseen in reference"
    )
    new_category_critical: float = Field(default=0.05, gt=0, le=1)
    range_warning: float = Field(
        default=0.01, gt=0, le=1, description="share outside the reference's observed range"
    )
    range_critical: float = Field(default=0.05, gt=0, le=1)


class WindowConfig(_Strict):
    """Event-time tumbling windows that close on ``max_events`` or ``max_seconds``, whichever comes first."""

    max_events: int = Field(default=5000, ge=10)
    max_seconds: float = Field(default=300.0, gt=0)
    slice_seconds: float | None = Field(
        default=None, gt=0, description="partial-sketch granularity; derived if unset"
    )
    allowed_lateness_seconds: float = Field(default=30.0, ge=0)
    max_future_seconds: float | None = Field(
        default=None,
        gt=0,
        description="events further ahead of the clock are dead-lettered as future_timestamp; unset: no bound",
    )
    min_events: int = Field(default=200, ge=1, description="smaller windows are summarised, not tested")

    @model_validator(mode="after")
    def _consistent(self) -> WindowConfig:
        if self.slice_seconds is not None and self.slice_seconds > self.max_seconds:
            raise ValueError("slice_seconds must not exceed max_seconds")
        if self.min_events > self.max_events:
            raise ValueError("min_events must not exceed max_events")
        return self


class AlertingConfig(_Strict):
    resolve_after_windows: int = Field(
        default=2, ge=1, description="clean windows in a row before 'resolved'"
    )
    hysteresis: float = Field(
        default=0.8, gt=0, le=1, description="resolve below this fraction of the warning level"
    )
    cooldown_seconds: float = Field(
        default=900.0, ge=0, description="event time before the same signal may re-fire"
    )


class BudgetConfig(_Strict):
    """How many false alerts a drift-free model may raise, in expectation, per day of event time."""

    false_alerts_per_day: float = Field(default=0.1, gt=0, le=10_000)


class FieldsConfig(_Strict):
    event_id: str = "event_id"
    ts: str = "ts"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    scores: str = "scores"
    label: str = "label"


class LabelsConfig(_Strict):
    ttl_seconds: float = Field(default=7 * 86400.0, gt=0)
    max_outstanding: int = Field(default=2_000_000, ge=1000)
    freshness_sla_seconds: float = Field(default=2 * 86400.0, gt=0)
    min_coverage: float = Field(default=0.5, ge=0, le=1)


class PerformanceConfig(_Strict):
    """Concept drift from joined labels, and a label-free estimate for binary classifiers (CBPE-style)."""

    enabled: bool = True
    bucket_seconds: float = Field(
        default=900.0,
        gt=0,
        description="longest performance window, in prediction time; label health is judged per bucket of it",
    )
    window_labelled: int = Field(
        default=2000,
        ge=10,
        description="a performance window closes once it holds this many predictions expected to be labelled",
    )
    min_labelled: int = Field(
        default=200, ge=10, description="labelled predictions before a window is judged"
    )
    accuracy_drop_warning: float = Field(default=0.02, gt=0, le=1)
    accuracy_drop_critical: float = Field(default=0.05, gt=0, le=1)
    mae_increase_warning: float = Field(default=0.1, gt=0, description="relative rise of MAE (regression)")
    mae_increase_critical: float = Field(default=0.25, gt=0)
    segment_spread_warning: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="a segment's error rate above the others', beyond the reference's",
    )
    segment_spread_critical: float = Field(default=0.03, gt=0, le=1)
    segment_min_labelled: int = Field(default=100, ge=10)
    segment_join_seconds: float = Field(
        default=3600.0, gt=0, description="how long a feature event's segment waits for its prediction"
    )
    segment_max_pending: int = Field(default=500_000, ge=1000)
    error_stream_detector: Literal[
        "cusum", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm", "adwin", "page_hinkley", "none"
    ] = Field(
        default="cusum",
        description="sequential test of every joined label's error bit, alerting when it fires",
    )
    estimate_without_labels: bool = True


class ModelConfig(_Strict):
    reference: str = Field(description="path of the reference profile (relative to the config file)")
    fields: FieldsConfig = FieldsConfig()
    timestamp_format: Literal["auto", "epoch_seconds", "epoch_millis", "iso8601"] = "auto"
    positive_class: str | int | bool | None = Field(
        default=None,
        description="a binary classifier's class that score is the probability of; unset: the larger of the two",
    )
    window: WindowConfig = WindowConfig()
    budget: BudgetConfig = BudgetConfig()
    thresholds: Literal["calibrated", "fixed"] = "calibrated"
    default_test: DriftTest = DriftTest()
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    sequential: SequentialConfig = SequentialConfig()
    multivariate: MultivariateConfig = MultivariateConfig()
    prediction: PredictionConfig = PredictionConfig()
    data_quality: DataQualityConfig = DataQualityConfig()
    alerting: AlertingConfig = AlertingConfig()
    labels: LabelsConfig = LabelsConfig()
    performance: PerformanceConfig = PerformanceConfig()
    segments: list[str] = Field(
        default_factory=list, description="categorical features whose values get their own error rates"
    )
    seasonality: Seasonality = Field(
        default=None,
        description="the cycle of every feature without its own; none when absent or off",
    )

    def seasonality_of(self, feature: str) -> SeasonalityConfig | None:
        """The cycle a feature is judged by: its own setting, else the model's (None: no cycle)."""
        fc = self.features.get(feature)
        own = fc.seasonality if fc is not None else None
        chosen = own if own is not None else self.seasonality
        return chosen if isinstance(chosen, SeasonalityConfig) else None

    def outcome_seasonality(self) -> tuple[tuple[SeasonalityConfig, ...], bool]:
        """The cycles the score and prediction are judged by (``prediction.seasonality``, else the model's;
        none: by the whole reference), and whether they are their own setting."""
        own = self.prediction.seasonality
        chosen = own if own is not None else self.seasonality
        cycles = (
            (chosen,)
            if isinstance(chosen, SeasonalityConfig)
            else tuple(chosen or ())
            if chosen != "off"
            else ()
        )
        return cycles, own is not None


class KafkaConfig(_Strict):
    bootstrap_servers: str = "127.0.0.1:9092"
    client: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="librdkafka settings passed through unchanged (security.protocol, sasl.*, ssl.*); "
        "write ${ENV_VAR} to read a value from the environment",
    )

    @field_validator("client", mode="before")
    @classmethod
    def _secrets(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str):
                value = _expand_env(value, f"kafka.client.{key}")
            out[key] = SecretStr(str(value)) if _SECRET_KEY.search(str(key)) else value
        return out

    def client_settings(self) -> dict[str, Any]:
        """A new dict for a client constructor, secrets revealed (never logged)."""
        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        for key, value in self.client.items():
            settings[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return settings


class TopicsConfig(_Strict):
    features: str = "features"
    predictions: str = "predictions"
    labels: str = "labels"
    features_batch: str = "features-batch"
    alerts: str = "drift-alerts"
    dlq: str = "stream-monitor-dlq"
    partials: str = "stream-monitor-partials"
    state: str = Field(
        default="stream-monitor-state", description="compacted topic of the service's state snapshots"
    )
    retraining: str | None = None
    window_stats: str | None = Field(
        default=None,
        description="a topic for every tested window's statistics (stream-monitor.window-stats/v1); off when null",
    )
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)


class ServiceConfig(_Strict):
    bind_host: str = Field(default="127.0.0.1", description="address of /metrics, /healthz and /readyz")
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    consumer_group: str = "stream-monitor"
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    model_id_field: str = "model_id"
    # Per-batch costs (numpy calls, partials) spread over more events: 20k beat 5k by about 10% per event.
    batch_max_events: int = Field(default=20_000, ge=1)
    max_label_cardinality: int = Field(default=2000, ge=10)
    snapshot_seconds: float = Field(
        default=5.0,
        gt=0,
        description="wall-clock seconds between state snapshots of a partition (replay bound)",
    )
    idle_partition_seconds: float = Field(
        default=10.0,
        gt=0,
        description="an input partition without messages this long stops holding windows open",
    )


class MonitorConfig(_Strict):
    version: Literal[1] = 1
    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    service: ServiceConfig = ServiceConfig()
    models: dict[str, ModelConfig] = Field(min_length=1)
    base_dir: Annotated[str, Field(exclude=True)] = "."

    def reference_path(self, model_id: str) -> Path:
        return resolve_reference(self.base_dir, self.models[model_id].reference)


def _expand_env(value: str, where: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"{where} refers to ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return _ENV_REF.sub(repl, value)


def resolve_reference(base_dir: str | Path, reference: str) -> Path:
    """Where a model's reference profile is: relative paths are relative to the config file's folder."""
    return (Path(base_dir) / reference).resolve()
