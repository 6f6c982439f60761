"""Config files: YAML read as ``yaml.safe_load`` reads it, keeping the line of every key, validated into a
:class:`~stream_monitor.config.schema.MonitorConfig`, and every problem reported at once with its path, its line
and, for a misspelt key or feature, the closest valid one.

:func:`check` (``config validate``) also asks each model's reference file: unreadable, no such model, features
and segments it lacks, statistics a categorical signal cannot take.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from stream_monitor.adapters.files.reference_file import load_reference
from stream_monitor.config.schema import (
    ModelConfig,
    MonitorConfig,
    resolve_reference,
)
from stream_monitor.core.errors import ConfigError

if TYPE_CHECKING:
    from stream_monitor.stats.profiles import ModelProfile


_SKIPPED_LOC = {"function-after", "function-before"}
# Last loc part of an error inside one member of a union (``str | int | ...``): pydantic reports each member.
_UNION_MEMBERS = {"str", "int", "float", "bool", "list", "dict", "none"}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}
_TYPE_TEXT = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}
_NOT_ORDERED = "needs ordered bins; use psi, js or chi2 for a categorical signal"


@dataclass(frozen=True)
class _Problem:
    path: str  # as printed: models.churn-v3.window.max_events
    message: str
    line: int | None = None  # known up front (YAML errors); else looked up from the path


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if isinstance(p, int) or (p not in _SKIPPED_LOC and "[" not in p))


def _format_loc(loc: tuple[int | str, ...], keep_last: bool = False) -> str:
    """The printed path; ``keep_last`` keeps the last part whatever it is (an unknown key the user wrote, which
    may contain a ``[`` like pydantic's own union labels)."""
    out = ""
    parts = _clean_loc(loc[:-1]) + loc[-1:] if keep_last else _clean_loc(loc)
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _suggestion(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (all of them if two or three tie), or nothing."""
    pool = list(choices)
    if not pool:
        return ""
    close = difflib.get_close_matches(name, pool, n=len(pool), cutoff=0.6)
    if not close:
        return ""
    best = difflib.SequenceMatcher(None, close[0], name).ratio()
    tied = sorted(c for c in close if difflib.SequenceMatcher(None, c, name).ratio() == best)
    if len(tied) > 3:
        return ""  # too many equally likely to be a useful hint
    return f" (did you mean {_either([repr(c) for c in tied])}?)"


def _either(words: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model that a (cleaned) location inside :class:`MonitorConfig` holds, if it is one."""
    tp: Any = MonitorConfig
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _short(value: Any) -> str | None:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return None


def _message(err: Any) -> str:
    kind, msg, ctx = err["type"], err["msg"], err.get("ctx") or {}
    loc = _clean_loc(tuple(err["loc"]))
    got = _short(err.get("input"))
    if kind == "extra_forbidden":  # the last part is the key as written: never cleaned away
        model = _model_at(_clean_loc(tuple(err["loc"])[:-1]))
        names = [n for n in model.model_fields if n != "base_dir"] if model else []
        return "unknown key" + _suggestion(str(err["loc"][-1]), names)
    if kind == "missing":
        return "required key is missing"
    if kind in _BOUNDS and isinstance(err.get("input"), float) and math.isnan(err["input"]):
        return "must be a number, not NaN"
    if kind in _BOUNDS and isinstance(err.get("input"), int | float):
        bound, text = _BOUNDS[kind]
        return f"{text} {ctx[bound]} (got {got})"
    if kind == "literal_error" and got is not None:
        return f"must be {ctx['expected']} (got {got})"
    if kind in ("value_error", "assertion_error"):
        return str(msg).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text = _TYPE_TEXT.get(kind) or str(msg).replace("Input should be ", "must be ", 1)
    if got is not None and kind in _TYPE_TEXT and loc[:2] != ("kafka", "client"):  # never echo a secret
        text += f" (got {got})"
    return text


def _schema_problems(errors: list[Any]) -> list[_Problem]:
    """One problem per pydantic error, the errors of a union's members (one per member) folded into one."""
    order: list[_Problem | tuple[int | str, ...]] = []
    unions: dict[tuple[int | str, ...], list[str]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        last = loc[-1] if loc else None
        member = isinstance(last, str) and (last in _UNION_MEMBERS or "[" in last)
        if not (member and str(err["type"]).endswith("_type")):
            order.append(
                _Problem(_format_loc(loc, keep_last=err["type"] == "extra_forbidden"), _message(err))
            )
            continue
        whole = loc[:-1]
        if whole not in unions:
            unions[whole] = []
            order.append(whole)
        phrase = str(err["msg"]).removeprefix("Input should be ").removeprefix("a valid ")
        if phrase not in unions[whole]:
            unions[whole].append(phrase)
    out = []
    for item in order:
        if isinstance(item, _Problem):
            out.append(item)
        else:
            out.append(_Problem(_format_loc(item), f"must be a {_either(unions[item])}"))
    return out


def _validate(raw: Any, base_dir: str | Path) -> tuple[MonitorConfig | None, list[_Problem]]:
    if raw is None:
        return None, [_Problem("(top level)", "the config is empty; it needs at least 'models'")]
    if not isinstance(raw, dict):
        return None, [_Problem("(top level)", f"expected a mapping, found {type(raw).__name__}")]
    try:
        return MonitorConfig.model_validate({**raw, "base_dir": str(base_dir)}), []
    except ValidationError as exc:
        return None, _schema_problems(exc.errors(include_url=False))


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


class _YamlDocument:
    """A YAML file read as ``yaml.safe_load`` reads it, plus the line of every key, by config path."""

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                self.data: Any = None
                return
            tags = _unknown_tags(root)
            if tags:
                raise ConfigError(*_problems_error(tags, "", None))
            self.data = loader.construct_document(root)  # still refuses what safe_load refuses
        finally:
            loader.dispose()
        self._record(root)  # after construction: merge keys (<<) have been flattened into the nodes

    def _record(self, root: yaml.Node) -> None:
        self.lines["(top level)"] = root.start_mark.line + 1
        seen: set[int] = set()
        stack: list[tuple[tuple[int | str, ...], yaml.Node]] = [((), root)]
        while stack:
            loc, node = stack.pop()
            if id(node) in seen:  # an alias: its keys are recorded under the anchor's path
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        child = (*loc, str(key.value))
                        self.lines[_format_loc(child)] = key.start_mark.line + 1  # a repeated key: the last
                        stack.append((child, value))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    self.lines[_format_loc((*loc, i))] = item.start_mark.line + 1
                    stack.append(((*loc, i), item))

    def line_of(self, path: str) -> int | None:
        """The line of ``path``'s key, or of its nearest parent that is in the file."""
        while path not in self.lines:
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return self.lines.get("(top level)")
            path = path[:cut]
        return self.lines[path]


def _unknown_tags(root: yaml.Node) -> list[_Problem]:
    # What safe_load constructs, plus the merge key (<<) its constructor expands itself.
    allowed = {*yaml.SafeLoader.yaml_constructors, "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"}
    found: list[_Problem] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in allowed:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            found.append(
                _Problem(
                    "",
                    f"unsafe or unknown YAML tag {tag} refused: a config holds plain data only",
                    node.start_mark.line + 1,
                )
            )
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


def _problems_error(
    problems: list[_Problem], source: str, doc: _YamlDocument | None
) -> tuple[list[tuple[str, str]], str, list[int | None]]:
    """``ConfigError`` arguments: each problem with its line (from the YAML document, where there is one)."""
    at: list[int | None] = []
    for p in problems:
        if p.line is not None:
            at.append(p.line)
        elif doc is not None:
            at.append(doc.line_of(p.path))
        else:
            at.append(None)
    return [(p.path, p.message) for p in problems], source, at


def _read_yaml(path: Path) -> _YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([("", f"cannot read the file: {reason}")], str(path)) from None
    try:
        doc = _YamlDocument(text)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(path), exc.lines) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem = f"unsafe or unknown YAML tag refused: {problem}"
        else:
            problem = f"invalid YAML: {problem}"
        if mark is not None:
            problem += f" (column {mark.column + 1})"
        raise ConfigError([("", str(problem))], str(path), [mark.line + 1 if mark else None]) from None
    return doc


def parse_config(raw: Any, source: str = "config", base_dir: str | Path = ".") -> MonitorConfig:
    """Validate an already-loaded mapping; every problem is reported with its path."""
    config, problems = _validate(raw, base_dir)
    if problems:
        raise ConfigError(*_problems_error(problems, source, None))
    assert config is not None
    return config


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a YAML config file: every schema problem, each with its path and line."""
    p = Path(path)
    doc = _read_yaml(p)
    config, problems = _validate(doc.data, p.parent)
    if problems:
        raise ConfigError(*_problems_error(problems, str(p), doc))
    assert config is not None
    return config


def check_config_file(path: str | Path) -> MonitorConfig:
    """Everything ``config validate`` checks, in one pass: the schema, every model's reference file, the
    features and segments the config names against it, and what the engine would refuse. Raises one
    :class:`ConfigError` with every problem, each with its line."""
    p = Path(path)
    doc = _read_yaml(p)
    config, problems = _validate(doc.data, p.parent)
    problems += _reference_problems(doc.data, p.parent, config)
    if problems:
        raise ConfigError(*_problems_error(problems, str(p), doc))
    assert config is not None
    return config
