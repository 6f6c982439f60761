"""Decode prediction messages straight into typed structs; anything atypical takes the exact orjson path.

The prediction twin of :mod:`~stream_monitor.core.typed_decoding`: a msgspec struct per model (told apart by
the model id) holds the event id, the timestamp, the prediction and the score, about half the cost of an
orjson dict per message, and the parser reads them as columns (:meth:`PredictionParser.parse_columns`) under
the rules of the dict path. The structs refuse whatever that path could treat differently: an unknown field
(a ``scores`` object among them), a missing prediction, a boolean or a float class, an integer beyond 64 bits
(orjson reads it as a float), a nested field path, malformed JSON. A refused message is decoded by
:func:`decode_batch` and parsed from its dict, exactly as without this module.

>>> from stream_monitor.core.outcome_parsing import PredictionParser
>>> decoder = TypedPredictionDecoder.build({"m": PredictionParser(["no", "yes"])})
>>> out = decoder.decode([
...     b'{"event_id":"a","model_id":"m","ts":1.7e9,"prediction":"yes","score":0.9}',
...     b'{"event_id":"b","model_id":"m","ts":1.7e9,"prediction":"no","scores":{"no":0.8,"yes":0.2}}',
...     b'{"event_id":"c","model_id":"m","ts":1.7e9}'])
>>> rows = out.batches["m"].rows
>>> out.batches["m"].positions.tolist(), rows.predicted.tolist(), rows.score.tolist(), out.slow
([0, 1], [1.0, 0.0], [0.9, 0.2], 2)
>>> [(r.index, r.reason.value) for r in out.rejections]
[(2, 'missing_field')]
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec
import numpy as np

from stream_monitor.core.decoded_batches import DecodedBatch, Parts, RowBatch, decode_slow
from stream_monitor.core.events import DEFAULT_MAX_MESSAGE_BYTES, MISSING
from stream_monitor.core.outcome_parsing import PredictionParser
from stream_monitor.core.rows import PredictionRows
from stream_monitor.core.typed_decoding import _NO_MODEL, _by_type, decode_typed

# Integers within 64 bits (orjson reads some larger ones as floats): the others go the orjson way.
_INT64: Final = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_EVENT_ID: Final = operator.attrgetter("event_id")
_TS: Final = operator.attrgetter("ts")
_PREDICTION: Final = operator.attrgetter("prediction")
_SCORE: Final = operator.attrgetter("score")


PredictionBatch = RowBatch[PredictionRows]


class DecodedPredictions(DecodedBatch[PredictionRows]):
    """What a batch of prediction messages decoded to."""


class TypedPredictionDecoder:
    """Raw prediction messages of any configured model -> :class:`PredictionRows` per model, plus rejections."""

    def __init__(
        self,
        parsers: Mapping[str, PredictionParser],
        model_id_field: str,
        max_bytes: int,
        event_types: Mapping[str, type],
    ) -> None:
        self.parsers = dict(parsers)
        self.model_id_field = model_id_field
        self.max_bytes = max_bytes
        self._model_of_type = {t: model for model, t in event_types.items()}
        sentinel = msgspec.defstruct("NoModel", [], tag_field=model_id_field, tag=_NO_MODEL, gc=False)
        union: Any = sentinel
        for t in event_types.values():
            union = union | t
        self._decode = msgspec.json.Decoder(union).decode

    @classmethod
    def build(
        cls,
        parsers: Mapping[str, PredictionParser],
        model_id_field: str = "model_id",
        max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> TypedPredictionDecoder | None:
        """The decoder for these models' prediction events, or None when a field path is nested or two
        fields share a name: the orjson path alone then serves them."""
        event_types: dict[str, type] = {}
        for n, (model_id, parser) in enumerate(parsers.items()):
            p = parser.paths
            names = [model_id_field, p.event_id, p.ts, p.prediction, p.score]
            if any("." in name for name in names) or len(set(names)) < len(names):
                return None
            outcome: Any = _INT64 | float if parser.classes is None else _INT64 | str
            event_types[model_id] = msgspec.defstruct(
                f"PredictionEvent{n}",
                [
                    ("event_id", str),
                    ("ts", _INT64 | float | str),
                    ("prediction", outcome),
                    ("score", _INT64 | float | None, MISSING),
                ],
                rename={"event_id": p.event_id, "ts": p.ts, "prediction": p.prediction, "score": p.score},
                tag_field=model_id_field,
                tag=model_id,
                forbid_unknown_fields=True,
                gc=False,
            )
        if not event_types:
            return None
        return cls(parsers, model_id_field, max_bytes, event_types)

    def decode(self, messages: Sequence[bytes | None]) -> DecodedPredictions:
        """Rows per model, in input order; every message not among them is a rejection."""
        typed, typed_at, slow = decode_typed(self._decode, self.max_bytes, messages)
        parts: Parts[PredictionRows] = {}
        out = DecodedPredictions()
        for kind, members in _by_type(typed).items():
            model = self._model_of_type.get(kind)
            if model is None:  # the sentinel's tag, sent by someone: the slow path names the unknown model
                slow.extend(typed_at[i] for i in members)
                continue
            whole = len(members) == len(typed)
            events = typed if whole else [typed[i] for i in members]
            at = np.asarray(typed_at if whole else [typed_at[i] for i in members], dtype=np.intp)
            rows, refused = self.parsers[model].parse_columns(
                list(map(_EVENT_ID, events)),
                list(map(_TS, events)),
                list(map(_PREDICTION, events)),
                list(map(_SCORE, events)),
            )
            out.keep(parts, model, rows, refused, at)
        decode_slow(messages, slow, self.parsers, self.model_id_field, self.max_bytes, parts, out)
        out.finish(parts, len(slow))
        return out
