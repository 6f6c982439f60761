"""Shared pieces of the service tests: a small synthetic model, its reference profile and config, streams.

The model has 4 numeric and 2 categorical features at 200 events/s of event time: windows of 1,000 events
(5 s of event time), slices of 0.5 s, 1 s of allowed lateness, so a 20k-event stream spans 20 windows.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from stream_monitor.core.clock import ManualClock
from stream_monitor.monitoring.engine import Engine
from stream_monitor.settings import MonitorConfig, parse_config
from stream_monitor.stats.profiles import ReferenceProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder
from stream_monitor.synthetic import Drift, StreamSpec, generate

MODEL = "churn-v3"
RATE = 200.0
REF_START = 1763766000.0
LIVE_START = REF_START + 86400.0
WINDOW: dict[str, Any] = {
    "max_events": 1000,
    "max_seconds": 60.0,
    "allowed_lateness_seconds": 1.0,
    "min_events": 200,
    "slice_seconds": 0.5,
}


def spec(seed: int, start: float, model_id: str = MODEL) -> StreamSpec:
    return StreamSpec(
        model_id=model_id,
        n_numeric=4,
        n_categorical=2,
        events_per_second=RATE,
        start_ts=start,
        seed=seed,
        with_predictions=False,
        with_labels=False,
    )


@functools.cache
def profile() -> ReferenceProfile:
    builder = ReferenceBuilder(seed=0)
    builder.add_features(generate(spec(1, REF_START), 20_000).features)
    return builder.build()


def model_config(**window: Any) -> dict[str, Any]:
    return {
        "reference": "reference.json",
        "window": {**WINDOW, **window},
        "alerting": {"cooldown_seconds": 0.0, "resolve_after_windows": 2},
    }


def config_dict(**service: Any) -> dict[str, Any]:
    return {"models": {MODEL: model_config()}, "service": service}


def config(**service: Any) -> MonitorConfig:
    return parse_config(config_dict(**service))


def engine(cfg: MonitorConfig | None = None) -> Engine:
    cfg = cfg or config()
    return Engine(cfg, profile().models, ManualClock(0.0))


def drift_at(fraction: float, n: int, feature: str = "num_00", magnitude: float = 1.5) -> Drift:
    return Drift("mean_shift", feature, start_ts=LIVE_START + fraction * n / RATE, magnitude=magnitude)


def live_events(n: int, drifting: bool, seed: int = 2) -> list[dict[str, Any]]:
    drifts = [drift_at(0.3, n)] if drifting else []
    return generate(spec(seed, LIVE_START), n, drifts).features


def write_config(directory: Path, bootstrap: str, topics: dict[str, str], **service: Any) -> Path:
    """Reference profile and config files for a ``stream-monitor run`` subprocess."""
    profile().save(directory / "reference.json")
    raw = config_dict(**service)
    raw["kafka"] = {
        "bootstrap_servers": bootstrap,
        "client": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    }
    raw["topics"] = topics
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
