"""Decoding raw messages and reading fields out of decoded events, with typed rejections instead of exceptions.

A bad message never raises out of the core: it becomes a :class:`Rejection` carrying its position in the input
batch and a :class:`RejectReason`, which the edges count and send to the dead-letter topic.

>>> events, kept, rejected = decode_batch([b'{"a": 1}', b'NaN', b'[1]', None])
>>> events, kept
([{'a': 1}], [0])
>>> [(r.index, r.reason.value) for r in rejected]
[(1, 'non_finite_number'), (2, 'not_object'), (3, 'empty_message')]
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

import numpy as np
import orjson
from numpy.typing import NDArray


class Stream(StrEnum):
    FEATURES = "features"
    PREDICTIONS = "predictions"
    LABELS = "labels"
    FEATURES_BATCH = "features_batch"


class RejectReason(StrEnum):
    EMPTY_MESSAGE = "empty_message"  # a tombstone or zero-length value
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    NOT_JSON = "not_json"
    NON_FINITE_NUMBER = "non_finite_number"  # NaN / Infinity literals, or a number too large for a double
    TOO_DEEP = "too_deep"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_MODEL = "unknown_model"
    FUTURE_TIMESTAMP = "future_timestamp"  # further ahead of the clock than window.max_future_seconds
    LATE_EVENT = "late_event"  # its slice was already handed out: later than window.allowed_lateness_seconds


# Reasons the fold gives (after decoding and parsing), for event time: the only ones a typed decoder's output
# can still earn.
FOLD_REASONS: Final = frozenset({RejectReason.FUTURE_TIMESTAMP, RejectReason.LATE_EVENT})


@dataclass(frozen=True, slots=True)
class Rejection:
    """One input message the core refused, with the position it had in the batch handed in."""

    index: int
    reason: RejectReason
    detail: str


DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_576
# At most this many ':' in a message: an upper bound of its object keys, counted (in C) before parsing, so a
# message of a million keys under a raised byte cap is refused without building its dict (about 245 MB for a
# million keys). A key-value pair takes at least 5 bytes (``"":0,``), so shorter messages are not counted.
MAX_MESSAGE_KEYS: Final = 100_000
_MIN_BYTES_PER_KEY: Final = 5


def too_many_keys(raw: bytes) -> int:
    """How many ':' a message holds when that is over :data:`MAX_MESSAGE_KEYS`, else 0.

    >>> too_many_keys(b'{"a": 1}'), too_many_keys(b"{" + b",".join(b'"k%d":0' % i for i in range(200_000)) + b"}")
    (0, 200000)
    """
    if len(raw) <= MAX_MESSAGE_KEYS * _MIN_BYTES_PER_KEY:
        return 0
    n = raw.count(b":")
    return n if n > MAX_MESSAGE_KEYS else 0


_NON_FINITE = re.compile(rb"(?<![\"\w])-?(NaN|Infinity)(?![\"\w])")


def _classify_decode_error(raw: bytes, exc: orjson.JSONDecodeError) -> tuple[RejectReason, str]:
    text = str(exc)
    if "UTF-8" in text:
        return RejectReason.INVALID_UTF8, "message is not valid UTF-8"
    if "depth limit" in text or "recursion" in text.lower():
        return RejectReason.TOO_DEEP, "JSON nesting is deeper than the decoder allows (1024)"
    if "infinity" in text or _NON_FINITE.search(raw):
        return (
            RejectReason.NON_FINITE_NUMBER,
            "NaN or Infinity is not valid JSON; send null for a missing value",
        )
    return RejectReason.NOT_JSON, f"not valid JSON: {text}"


def decode_batch(
    messages: Sequence[bytes | None], max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> tuple[list[dict[str, Any]], list[int], list[Rejection]]:
    """Decode raw messages with orjson; return the objects, their input positions, and the rejections."""
    whole = _decode_whole(messages, max_bytes)
    if whole is not None:
        return whole, list(range(len(whole))), []
    events: list[dict[str, Any]] = []
    kept: list[int] = []
    rejected: list[Rejection] = []
    loads = orjson.loads
    for i, raw in enumerate(messages):
        if not raw:
            rejected.append(Rejection(i, RejectReason.EMPTY_MESSAGE, "empty message (tombstone)"))
            continue
        if len(raw) > max_bytes:
            rejected.append(
                Rejection(
                    i, RejectReason.TOO_LARGE, f"message of {len(raw)} bytes exceeds the {max_bytes} cap"
                )
            )
            continue
        if keys := too_many_keys(raw):
            rejected.append(
                Rejection(
                    i,
                    RejectReason.TOO_LARGE,
                    f"message holds {keys} ':' (object keys or colons in strings); at most {MAX_MESSAGE_KEYS}",
                )
            )
            continue
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError as exc:
            reason, detail = _classify_decode_error(bytes(raw), exc)
            rejected.append(Rejection(i, reason, detail))
            continue
        if type(obj) is not dict:
            rejected.append(
                Rejection(i, RejectReason.NOT_OBJECT, f"JSON root is {type(obj).__name__}, not an object")
            )
            continue
        events.append(obj)
        kept.append(i)
    return events, kept, rejected


def _decode_whole(messages: Sequence[bytes | None], max_bytes: int) -> list[dict[str, Any]] | None:
    """Every message's object, decoded one by one in a single C-level pass, or None when any message needs a
    look of its own (then :func:`decode_batch` walks them, finding the reasons).

    The checks of the walk cost more than decoding a small message (a prediction is about 100 bytes). Each
    message keeps its own ``loads`` call: joining the batch into one JSON array would let two broken messages
    pair up into one valid object while a third, holding two objects, keeps the count right.

    >>> _decode_whole([b'{"a": 1}', b'{"b": [2]}'], 100), _decode_whole([b'{"a": 1}', b'[1]'], 100)
    ([{'a': 1}, {'b': [2]}], None)
    """
    if not messages or not all(messages):
        return None
    # short enough for the byte cap and for the key bound (too_many_keys counts nothing below it)
    if max(map(len, messages)) > min(max_bytes, MAX_MESSAGE_KEYS * _MIN_BYTES_PER_KEY):  # type: ignore[arg-type]
        return None
    try:
        objs = list(map(orjson.loads, messages))  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return None
    return objs if set(map(type, objs)) <= {dict} else None


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


class FieldPath:
    """A dotted path into an event (``"features"``, ``"payload.ts"``), read for a whole batch at once.

    >>> FieldPath("a.b").get_all([{"a": {"b": 1}}, {"a": {}}, {"a": 3}])
    [1, MISSING, MISSING]
    """

    def __init__(self, path: str) -> None:
        if not path or any(not part for part in path.split(".")):
            raise ValueError(
                f"invalid field path {path!r}: use dotted keys such as 'features' or 'payload.ts'"
            )
        self.path = path
        self._parts = tuple(path.split("."))
        self._single: Callable[[Any], Any] | None = (
            operator.itemgetter(path) if len(self._parts) == 1 else None
        )

    def get(self, event: Any) -> Any:
        value = event
        for part in self._parts:
            if type(value) is not dict:
                return MISSING
            value = value.get(part, MISSING)
        return value

    def get_all(self, events: Sequence[dict[str, Any]]) -> list[Any]:
        if self._single is not None:
            try:
                return list(map(self._single, events))  # C-level fast path: every event has the key
            except KeyError:
                pass
        return [self.get(e) for e in events]


TimestampFormat = Literal["auto", "epoch_seconds", "epoch_millis", "iso8601"]

# Plausible epoch seconds: 2001-09-09 .. 2286-11-20. In "auto", larger numbers are read as milliseconds.
_MIN_EPOCH_S: Final = 1.0e9
_MAX_EPOCH_S: Final = 1.0e10


def _iso_to_epoch(value: str) -> float:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_timestamps(
    values: list[Any], fmt: TimestampFormat
) -> tuple[NDArray[np.float64], list[tuple[int, str]]]:
    """Epoch seconds for every value, NaN where invalid, plus ``(position, why)`` for each invalid one."""
    n = len(values)
    kinds = set(map(type, values))
    if kinds <= {float, int} and fmt != "iso8601":
        out = np.fromiter(values, dtype=np.float64, count=n)
        if fmt == "epoch_millis":
            out /= 1000.0
        elif fmt == "auto":
            millis = out > _MAX_EPOCH_S * 10
            out[millis] /= 1000.0
        bad = ~np.isfinite(out) | (out < _MIN_EPOCH_S) | (out > _MAX_EPOCH_S)
        if not bad.any():
            return out, []
        out_of_range = [
            (int(i), f"timestamp {values[i]!r} is outside 2001..2286 in {fmt} format")
            for i in np.flatnonzero(bad)
        ]
        out[bad] = np.nan
        return out, out_of_range
    out = np.empty(n, dtype=np.float64)
    errors: list[tuple[int, str]] = []
    for i, value in enumerate(values):
        ts = _one_timestamp(value, fmt)
        if isinstance(ts, str):
            errors.append((i, ts))
            out[i] = np.nan
        else:
            out[i] = ts
    return out, errors


def _one_timestamp(value: Any, fmt: TimestampFormat) -> float | str:
    if value is MISSING or value is None:
        return "timestamp is missing"
    kind = type(value)
    if kind in (int, float):
        if fmt == "iso8601":
            return f"timestamp {value!r} is a number; config says iso8601"
        seconds = (
            float(value) / 1000.0
            if fmt == "epoch_millis" or (fmt == "auto" and value > _MAX_EPOCH_S * 10)
            else float(value)
        )
        if not math.isfinite(seconds) or not _MIN_EPOCH_S <= seconds <= _MAX_EPOCH_S:
            # the words of the vectorised path in parse_timestamps: a value reads the same in any batch
            return f"timestamp {value!r} is outside 2001..2286 in {fmt} format"
    elif kind is str:
        if fmt in ("epoch_seconds", "epoch_millis"):
            return f"timestamp {value!r} is a string; config says {fmt}"
        try:
            seconds = _iso_to_epoch(value)
        except ValueError:
            return f"timestamp {value!r} is not ISO-8601"
    else:
        return f"timestamp has type {kind.__name__}"
    if not math.isfinite(seconds) or not _MIN_EPOCH_S <= seconds <= _MAX_EPOCH_S:
        return f"timestamp {value!r} is outside 2001..2286"
    return seconds
