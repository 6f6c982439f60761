"""What each model's reference file says is wrong with a config (``config validate``): an unreadable file, no
such model, features and segments it lacks, statistics a categorical signal cannot take, and whatever else the
engine's layout would refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from stream_monitor.adapters.files.reference_file import load_reference
from stream_monitor.config.problems import _format_loc, _Problem, _suggestion
from stream_monitor.config.schema import ModelConfig, MonitorConfig, resolve_reference
from stream_monitor.core.errors import ConfigError

if TYPE_CHECKING:
    from stream_monitor.stats.profiles import ModelProfile

_NOT_ORDERED = "needs ordered bins; use psi, js or chi2 for a categorical signal"


def _reference_problems(raw: Any, base_dir: str | Path, config: MonitorConfig | None) -> list[_Problem]:
    """What each model's reference file says is wrong with the config: for every model whose ``reference``
    is a string, whether or not the rest of the file is valid."""
    from stream_monitor.core.errors import ReferenceProfileError
    from stream_monitor.stats.profiles import ReferenceProfile

    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        return []
    problems: list[_Problem] = []
    cache: dict[Path, ReferenceProfile | str] = {}
    for model_id, mraw in models.items():
        if not isinstance(model_id, str) or not isinstance(mraw, dict):
            continue
        reference = mraw.get("reference")
        if not isinstance(reference, str):
            continue
        where = _format_loc(("models", model_id))
        path = resolve_reference(base_dir, reference)
        if path not in cache:
            try:
                cache[path] = load_reference(path)
            except ReferenceProfileError as exc:
                cache[path] = str(exc)
        loaded = cache[path]
        if isinstance(loaded, str):
            problems.append(_Problem(f"{where}.reference", loaded))
            continue
        if model_id not in loaded.models:
            has = ", ".join(sorted(loaded.models)) or "none"
            problems.append(
                _Problem(f"{where}.reference", f"{path} has no model {model_id!r} (it has: {has})")
            )
            continue
        mcfg = config.models[model_id] if config is not None else _model_config(mraw)
        problems.extend(_model_problems(model_id, mraw, mcfg, loaded.models[model_id]))
    return problems


def _dig(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


def _needs_order(statistic: Any) -> bool:
    from stream_monitor.stats.divergences import STATISTICS

    return isinstance(statistic, str) and statistic in STATISTICS and STATISTICS[statistic].ordinal_only


def _model_config(mraw: dict[str, Any]) -> ModelConfig | None:
    try:
        return ModelConfig.model_validate(mraw)
    except ValidationError:
        return None  # already reported


def _model_problems(
    model_id: str, mraw: dict[str, Any], mcfg: ModelConfig | None, profile: ModelProfile
) -> list[_Problem]:
    """Names the config gives that the reference lacks (from the raw mapping, so a model with other errors
    is still checked), then, if the model's own config is valid, the checks that need its values."""
    from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

    where = _format_loc(("models", model_id))
    problems: list[_Problem] = []
    features = mraw.get("features")
    for name in features if isinstance(features, dict) else ():
        if isinstance(name, str) and name not in profile.features:
            problems.append(
                _Problem(
                    f"{where}.features.{name}",
                    "not a feature of the reference profile" + _suggestion(name, profile.features),
                )
            )
    segments = mraw.get("segments")
    categorical = [n for n, p in profile.features.items() if not isinstance(p, NumericProfile)]
    for i, name in enumerate(segments if isinstance(segments, list) else ()):
        if not isinstance(name, str):
            continue
        if name not in profile.features:
            message = "not a feature of the reference profile" + _suggestion(name, categorical)
        elif name not in categorical:
            message = f"{name!r} is numeric; segments must be categorical features"
        else:
            continue
        problems.append(_Problem(f"{where}.segments[{i}]", message))
    ordinal_default: list[str] = []
    for name, prof in profile.features.items():
        if not isinstance(prof, CategoricalProfile):
            continue
        if isinstance(features, dict) and name in features:
            if _dig(features, name, "enabled") is False:
                continue
            own = _dig(features, name, "test")
            stat = (
                (own.get("statistic") or "psi")
                if isinstance(own, dict)
                else _dig(mraw, "default_test", "statistic")
            )
            if stat is not None and _needs_order(stat):
                if isinstance(own, dict):
                    problems.append(
                        _Problem(f"{where}.features.{name}.test.statistic", f"{stat} {_NOT_ORDERED}")
                    )
                else:
                    ordinal_default.append(name)
        elif _needs_order(_dig(mraw, "default_test", "statistic")):
            ordinal_default.append(name)
    if ordinal_default:
        stat = _dig(mraw, "default_test", "statistic")
        problems.append(
            _Problem(
                f"{where}.default_test.statistic",
                f"{stat} {_NOT_ORDERED} (categorical features without a test of their own: "
                f"{', '.join(ordinal_default)})",
            )
        )
    stat = _dig(mraw, "prediction", "test", "statistic")
    preds = profile.predictions
    if (
        preds is not None
        and isinstance(preds.prediction, CategoricalProfile)
        and _dig(mraw, "prediction", "enabled") is not False
        and _needs_order(stat)
    ):
        problems.append(
            _Problem(f"{where}.prediction.test.statistic", f"{stat} {_NOT_ORDERED} (the predicted class)")
        )
    if mcfg is not None and not problems:
        # Whatever else the engine's layout refuses (a segment that is disabled, segments without a classifier).
        from stream_monitor.pipeline.model_layout import ModelLayout

        try:
            ModelLayout.build(model_id, mcfg, profile)
        except ConfigError as exc:
            problems.extend(_Problem(path, message) for path, message in exc.problems)
    return problems
