"""A config's problems as they are printed: a path (``models.churn-v3.window.max_events``), a message, and for
a misspelt key the closest valid one; pydantic's validation errors turned into them, one per mistake.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from stream_monitor.config.schema import MonitorConfig

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
