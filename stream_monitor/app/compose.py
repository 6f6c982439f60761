"""The composition root: the one place a validated config and its reference files become running parts.

``build_engine`` gives the in-process engine (replay, the offline demo, the benchmarks); ``build_service``
gives the halves the Kafka worker (and the Faust agents) run per partition. Both derive every model's layout
and slicing in :func:`~stream_monitor.pipeline.assembly.build_models`, so they are the same pipeline.
"""

from __future__ import annotations

from pathlib import Path

from stream_monitor.adapters.files.reference_file import load_reference
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.clock import Clock
from stream_monitor.core.errors import ConfigError, ReferenceProfileError
from stream_monitor.pipeline.assembly import ServiceModels, build_models
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.model_layout import field_paths
from stream_monitor.stats.profiles import ModelProfile, ReferenceProfile
from stream_monitor.stats.reference_events import EventFormat


def load_profiles(config: MonitorConfig) -> dict[str, ModelProfile]:
    """Each model's profile from its reference file; every problem reported with its config path."""
    problems: list[tuple[str, str]] = []
    cache: dict[Path, ReferenceProfile] = {}
    out: dict[str, ModelProfile] = {}
    for model_id in config.models:
        path = config.reference_path(model_id)
        where = f"models.{model_id}.reference"
        try:
            if path not in cache:
                cache[path] = load_reference(path)
        except ReferenceProfileError as exc:
            problems.append((where, str(exc)))
            continue
        models = cache[path].models
        if model_id not in models:
            problems.append(
                (where, f"{path} has no model {model_id!r} (it has: {', '.join(sorted(models))})")
            )
            continue
        out[model_id] = models[model_id]
    if problems:
        raise ConfigError(problems)
    return out


def build_engine(config: MonitorConfig, clock: Clock | None = None, shards: int = 1) -> Engine:
    """The in-process engine; ``shards`` > 1: its merge also takes the partials of folds run elsewhere."""
    return Engine(config, load_profiles(config), clock, shards)


def build_service(config: MonitorConfig, clock: Clock | None = None) -> ServiceModels:
    return build_models(config, load_profiles(config), clock)


def event_formats(config: MonitorConfig) -> dict[str, EventFormat]:
    """How each model's events are read (its ``fields``, ``timestamp_format`` and ``positive_class``), for
    ``reference build --config``: the paths and time format the pipeline's parsers are built with."""
    return {
        model_id: EventFormat(field_paths(m), m.timestamp_format, m.positive_class)
        for model_id, m in config.models.items()
    }
