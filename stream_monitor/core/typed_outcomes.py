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
([0, 1], [1.0, 0.0], [0.9, 0.8], 2)
>>> [(r.index, r.reason.value) for r in out.rejections]
[(2, 'missing_field')]
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.envelope import route_by_model
from stream_monitor.core.events import DEFAULT_MAX_MESSAGE_BYTES, MISSING, Rejection, decode_batch
from stream_monitor.core.outcome_parsing import PredictionParser
from stream_monitor.core.rows import PredictionRows
from stream_monitor.core.typed_decoding import _NO_MODEL, _by_type, decode_typed

# Integers within 64 bits (orjson reads some larger ones as floats): the others go the orjson way.
_INT64: Final = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_EVENT_ID: Final = operator.attrgetter("event_id")
_TS: Final = operator.attrgetter("ts")
_PREDICTION: Final = operator.attrgetter("prediction")
_SCORE: Final = operator.attrgetter("score")


@dataclass
class PredictionBatch:
    """One model's rows from a batch of messages, in input order, with each row's input position."""

    rows: PredictionRows
    positions: NDArray[np.intp]


@dataclass
class DecodedPredictions:
    """What a batch of prediction messages decoded to."""

    batches: dict[str, PredictionBatch] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)  # input positions, ascending
    refused_by_model: dict[str, int] = field(default_factory=dict)  # rejections of a known model's events
    slow: int = 0  # messages the structs refused, decoded by the orjson path


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
        parts: dict[str, list[tuple[PredictionRows, NDArray[np.intp]]]] = {}
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
            self._keep(model, rows, refused, at, parts, out)
        if slow:
            slow.sort()
            self._slow([messages[i] for i in slow], slow, parts, out)
        out.batches = {model: _merge(pieces) for model, pieces in parts.items()}
        out.rejections.sort(key=lambda r: r.index)
        out.slow = len(slow)
        return out

    @staticmethod
    def _keep(
        model: str,
        rows: PredictionRows,
        refused: list[Rejection],
        at: NDArray[np.intp],
        parts: dict[str, list[tuple[PredictionRows, NDArray[np.intp]]]],
        out: DecodedPredictions,
    ) -> None:
        """A model's parsed rows (``at``: the input position of each event the parser saw) and refusals."""
        out.rejections.extend(Rejection(int(at[r.index]), r.reason, r.detail) for r in refused)
        if refused:
            out.refused_by_model[model] = out.refused_by_model.get(model, 0) + len(refused)
            at = np.delete(at, [r.index for r in refused])
        parts.setdefault(model, []).append((rows, at))

    def _slow(
        self,
        messages: list[bytes | None],
        at: list[int],
        parts: dict[str, list[tuple[PredictionRows, NDArray[np.intp]]]],
        out: DecodedPredictions,
    ) -> None:
        """The orjson path, for the messages the structs refused: decode, route, parse from dicts."""
        events, kept, bad = decode_batch(messages, self.max_bytes)
        out.rejections.extend(Rejection(at[r.index], r.reason, r.detail) for r in bad)
        groups, unrouted = route_by_model(events, self.model_id_field, self.parsers)
        out.rejections.extend(Rejection(at[kept[r.index]], r.reason, r.detail) for r in unrouted)
        for model, members in groups.items():
            rows, refused = self.parsers[model].parse([events[i] for i in members])
            positions = np.asarray([at[kept[i]] for i in members], dtype=np.intp)
            self._keep(model, rows, refused, positions, parts, out)


def split_predictions(decoded: DecodedPredictions, cut: int) -> tuple[DecodedPredictions, DecodedPredictions]:
    """What messages ``[0, cut)`` decoded to, and what the rest did (positions counted from ``cut``); the
    counters go with the first part."""
    head = DecodedPredictions(refused_by_model=decoded.refused_by_model, slow=decoded.slow)
    tail = DecodedPredictions()
    for model, batch in decoded.batches.items():
        k = int(np.searchsorted(batch.positions, cut))
        first, rest = batch.rows.split(k)
        if k:
            head.batches[model] = PredictionBatch(first, batch.positions[:k])
        if k < len(batch.positions):
            tail.batches[model] = PredictionBatch(rest, batch.positions[k:] - cut)
    for r in decoded.rejections:
        if r.index < cut:
            head.rejections.append(r)
        else:
            tail.rejections.append(Rejection(r.index - cut, r.reason, r.detail))
    return head, tail


def _merge(pieces: list[tuple[PredictionRows, NDArray[np.intp]]]) -> PredictionBatch:
    """One model's rows from the fast and the slow path, back in input order."""
    if len(pieces) == 1:
        return PredictionBatch(*pieces[0])
    rows = PredictionRows.concat([p[0] for p in pieces])
    positions = np.concatenate([p[1] for p in pieces])
    order = np.argsort(positions, kind="stable")
    return PredictionBatch(rows.permute(order), positions[order])
