"""Decode feature messages straight into typed structs; anything atypical takes the exact orjson path.

orjson builds a dict per event and an object per value, which the parser then reads back key by key: about
5 us of a feature event's budget on the benchmark machine. msgspec decodes into a struct generated from the
config instead (one per model, told apart by the model id), validating every type as it goes, in about half
that, and hands the feature values back as one tuple in the parser's column order.

The fast path changes speed, never a result. Its structs refuse anything the orjson path would treat
differently: a wrong type, a boolean among numbers, an unknown feature or envelope field (so nothing is ever
skipped unvalidated: msgspec does not check the UTF-8 or the range of a value it skips, orjson does), a
missing model id, malformed JSON. A refused message is decoded again by :func:`decode_batch` and parsed from
its dict, exactly as without this module. Null and absent feature values stay on the fast path: they come back
as ``None`` and :data:`MISSING`, which the parser codes as it does for dicts.

>>> from stream_monitor.core.feature_parsing import FeatureParser
>>> decoder = TypedFeatureDecoder.build({"m": FeatureParser(["age"], {"plan": ["free", "pro"]})})
>>> out = decoder.decode([
...     b'{"event_id":"a","model_id":"m","ts":1.7e9,"features":{"age":41,"plan":"pro"}}',
...     b'{"event_id":"b","model_id":"m","ts":1.7e9,"features":{"age":true,"plan":"pro"}}',
...     b'not json'])
>>> out.batches["m"].positions.tolist(), out.batches["m"].rows.numeric_code[:, 0].tolist(), out.slow
([0, 1], [0, 3], 2)
>>> [(r.index, r.reason.value) for r in out.rejections]
[(2, 'not_json')]
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.decoded_batches import DecodedBatch, Parts, RowBatch, decode_slow
from stream_monitor.core.events import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_KEYS,
    MISSING,
    Rejection,
    RejectReason,
    parse_timestamps,
    too_many_keys,
)
from stream_monitor.core.feature_parsing import FeatureParser
from stream_monitor.core.rows import FeatureRows

# The tag of a struct no model uses: with two tagged types at least, msgspec requires the model id field (with
# a single one it would accept an event without it).
_NO_MODEL: Final = "\x00stream-monitor: no model"


FeatureBatch = RowBatch[FeatureRows]


class DecodedFeatures(DecodedBatch[FeatureRows]):
    """What a batch of feature messages decoded to."""


class TypedFeatureDecoder:
    """Raw feature messages of any configured model -> :class:`FeatureRows` per model, plus rejections."""

    def __init__(
        self,
        parsers: Mapping[str, FeatureParser],
        model_id_field: str,
        max_bytes: int,
        event_types: Mapping[str, type],
        decoder: msgspec.json.Decoder[Any],
    ) -> None:
        self.parsers = dict(parsers)
        self.model_id_field = model_id_field
        self.max_bytes = max_bytes
        self._model_of_type = {t: model for model, t in event_types.items()}
        self._decode = decoder.decode

    @classmethod
    def build(
        cls,
        parsers: Mapping[str, FeatureParser],
        model_id_field: str = "model_id",
        max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> TypedFeatureDecoder | None:
        """The decoder for these models' feature events, or None when a field path is nested (``payload.ts``):
        the orjson path alone then serves them."""
        paths = [model_id_field]
        for p in parsers.values():
            paths += [p.paths.event_id, p.paths.ts, p.paths.features]
        if not parsers or any("." in path for path in paths):
            return None
        event_types: dict[str, type] = {}
        for n, (model_id, parser) in enumerate(parsers.items()):
            cells = parser.cell_types() + [(name, Any) for name in parser.ignored]  # ignored ones last
            features = msgspec.defstruct(
                f"Features{n}",
                [(f"f{k}", kind, MISSING) for k, (_, kind) in enumerate(cells)],
                rename={f"f{k}": name for k, (name, _) in enumerate(cells)},
                forbid_unknown_fields=True,
                gc=False,
            )
            event_types[model_id] = msgspec.defstruct(
                f"FeatureEvent{n}",
                [("event_id", str), ("ts", int | float | str), ("features", features)],
                rename={
                    "event_id": parser.paths.event_id,
                    "ts": parser.paths.ts,
                    "features": parser.paths.features,
                },
                tag_field=model_id_field,
                tag=model_id,
                forbid_unknown_fields=True,
                gc=False,
            )
        sentinel = msgspec.defstruct("NoModel", [], tag_field=model_id_field, tag=_NO_MODEL, gc=False)
        union = sentinel
        for t in event_types.values():
            union = union | t  # type: ignore[assignment]
        return cls(parsers, model_id_field, max_bytes, event_types, msgspec.json.Decoder(union))

    def decode(self, messages: Sequence[bytes | None]) -> DecodedFeatures:
        """Rows per model, in input order; every message not among them is a rejection."""
        typed, typed_at, slow = self._typed(messages)
        parts: Parts[FeatureRows] = {}
        out = DecodedFeatures()
        rejected = out.rejections
        for kind, members in _by_type(typed).items():
            model = self._model_of_type.get(kind)
            if model is None:  # the sentinel's tag, sent by someone: the slow path names the unknown model
                slow.extend(typed_at[i] for i in members)
                continue
            whole = len(members) == len(typed)
            events = typed if whole else [typed[i] for i in members]
            at = np.asarray(typed_at if whole else [typed_at[i] for i in members], dtype=np.intp)
            rows, refused, kept = self._rows(self.parsers[model], events)
            rejected.extend(Rejection(int(at[r.index]), r.reason, r.detail) for r in refused)
            if refused:
                out.refused_by_model[model] = out.refused_by_model.get(model, 0) + len(refused)
            parts.setdefault(model, []).append((rows, at[kept]))  # refused rows are not in `rows`
        decode_slow(messages, slow, self.parsers, self.model_id_field, self.max_bytes, parts, out)
        out.finish(parts, len(slow))
        return out

    def _typed(self, messages: Sequence[bytes | None]) -> tuple[list[Any], list[int], list[int]]:
        return decode_typed(self._decode, self.max_bytes, messages)

    @staticmethod
    def _rows(
        parser: FeatureParser, events: list[Any]
    ) -> tuple[FeatureRows, list[Rejection], NDArray[np.intp]]:
        """Rows of typed events (only a timestamp can still be refused), and the positions (in ``events``) kept."""
        ids = list(map(_EVENT_ID, events))
        ts, errors = parse_timestamps(list(map(_TS, events)), parser.ts_format)
        if errors:
            bad = {i for i, _ in errors}
            refused = [
                Rejection(i, RejectReason.BAD_TIMESTAMP, f"{parser.paths.ts!r}: {why}") for i, why in errors
            ]
            kept = np.asarray([i for i in range(len(events)) if i not in bad], dtype=np.intp)
            events = [events[i] for i in kept]
            ids = [ids[i] for i in kept]
            ts = ts[kept]
        else:
            refused, kept = [], np.arange(len(events), dtype=np.intp)
        values: Iterable[tuple[Any, ...]] = map(msgspec.structs.astuple, map(_FEATURES, events))
        if parser.ignored:  # a disabled feature's value is decoded (so validated) but is no cell
            width = len(parser.numeric) + len(parser.categorical)
            values = (v[:width] for v in values)
        cells = list(chain.from_iterable(values))
        return parser.rows_from_cells(ts, ids, cells), refused, kept


def decode_typed(
    decode: Any, max_bytes: int, messages: Sequence[bytes | None]
) -> tuple[list[Any], list[int], list[int]]:
    """Structs and their positions for every message ``decode`` accepts; the positions of the rest (the
    orjson path's: empty, too large, too many keys, or refused by the structs)."""
    n = len(messages)
    longest = max(map(len, messages)) if n and all(messages) else -1  # type: ignore[arg-type]
    if 0 <= longest <= min(max_bytes, MAX_MESSAGE_KEYS * 5):  # too short to hold too many keys
        with contextlib.suppress(Exception):  # one message refused: look at each below
            return list(map(decode, messages)), list(range(n)), []
    typed: list[Any] = []
    typed_at: list[int] = []
    slow: list[int] = []
    for i, raw in enumerate(messages):
        if not raw or len(raw) > max_bytes or too_many_keys(raw):
            slow.append(i)
            continue
        try:
            typed.append(decode(raw))
        except Exception:  # a decode error, a RecursionError, invalid UTF-8: the orjson path classifies
            slow.append(i)
            continue
        typed_at.append(i)
    return typed, typed_at, slow


_EVENT_ID: Final = operator.attrgetter("event_id")
_TS: Final = operator.attrgetter("ts")
_FEATURES: Final = operator.attrgetter("features")


def _by_type(items: list[Any]) -> dict[type, list[int]]:
    """Positions of the items of each type; one C-level pass when they are all alike (one model per topic)."""
    if not items:
        return {}
    kinds = list(map(type, items))
    if kinds.count(kinds[0]) == len(kinds):
        return {kinds[0]: list(range(len(kinds)))}
    groups: dict[type, list[int]] = {}
    for i, kind in enumerate(kinds):
        groups.setdefault(kind, []).append(i)
    return groups
