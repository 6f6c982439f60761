"""The typed prediction path gives exactly what the orjson path gives, message for message, whatever the mix."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.core.envelope import FieldPaths
from stream_monitor.core.outcome_parsing import PredictionParser
from stream_monitor.core.typed_outcomes import TypedPredictionDecoder
from tests.orjson_path import orjson_path

MAX_BYTES = 4096
PARSERS = {
    "clf": PredictionParser(["no", "yes"]),  # string classes
    "int": PredictionParser([0, 1]),  # integer classes
    "reg": PredictionParser(None),  # a regression
}
DROP = object()  # a key left out


def _event(i: int, model: str = "clf", **changes: Any) -> dict[str, Any]:
    outcome: Any = {"clf": "yes", "int": 1, "reg": 0.5 * i}[model]
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "model_id": model,
        "ts": 1.7e9 + i,
        "prediction": outcome,
        "score": 0.25,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not DROP}


KINDS: dict[str, Any] = {
    "clean": lambda i: orjson.dumps(_event(i)),
    "clean int": lambda i: orjson.dumps(_event(i, "int")),
    "clean reg": lambda i: orjson.dumps(_event(i, "reg")),
    "int score": lambda i: orjson.dumps(_event(i, score=1)),
    "null score": lambda i: orjson.dumps(_event(i, score=None)),
    "no score": lambda i: orjson.dumps(_event(i, score=DROP)),
    "string score": lambda i: orjson.dumps(_event(i, score="0.5")),
    "bool score": lambda i: orjson.dumps(_event(i, score=True)),
    "scores": lambda i: orjson.dumps(_event(i, score=DROP, scores={"no": 0.3, "yes": 0.7})),
    "bad scores": lambda i: orjson.dumps(_event(i, score=DROP, scores={"no": "x"})),
    "scores list": lambda i: orjson.dumps(_event(i, score=None, scores=[1])),
    "new class": lambda i: orjson.dumps(_event(i, prediction="maybe")),
    "int class": lambda i: orjson.dumps(_event(i, prediction=1)),
    "bool class": lambda i: orjson.dumps(_event(i, "int", prediction=True)),
    "float class": lambda i: orjson.dumps(_event(i, "int", prediction=1.0)),
    "string class of ints": lambda i: orjson.dumps(_event(i, "int", prediction="1")),
    "null prediction": lambda i: orjson.dumps(_event(i, prediction=None)),
    "no prediction": lambda i: orjson.dumps(_event(i, prediction=DROP)),
    "list prediction": lambda i: orjson.dumps(_event(i, prediction=[1])),
    "int regression": lambda i: orjson.dumps(_event(i, "reg", prediction=3)),
    "string regression": lambda i: orjson.dumps(_event(i, "reg", prediction="3")),
    "bool regression": lambda i: orjson.dumps(_event(i, "reg", prediction=False)),
    "huge int regression": lambda i: orjson.dumps(_event(i, "reg")).replace(
        b'"prediction":', b'"prediction":123456789012345678901234567890,"x":'
    ),
    "u64 score": lambda i: orjson.dumps(_event(i, score=2**64 - 1)),
    "huge score": lambda i: orjson.dumps(_event(i)).replace(b'"score":0.25', b'"score":1e400'),
    "extra field": lambda i: orjson.dumps(_event(i, source="web")),
    "int id": lambda i: orjson.dumps(_event(i, event_id=i)),
    "null id": lambda i: orjson.dumps(_event(i, event_id=None)),
    "iso ts": lambda i: orjson.dumps(_event(i, ts="2025-11-22T10:00:00Z")),
    "millis ts": lambda i: orjson.dumps(_event(i, ts=1_700_000_000_000 + i)),
    "bad ts": lambda i: orjson.dumps(_event(i, ts="yesterday")),
    "ancient ts": lambda i: orjson.dumps(_event(i, ts=12.0)),
    "bool ts": lambda i: orjson.dumps(_event(i, ts=True)),
    "no ts": lambda i: orjson.dumps(_event(i, ts=DROP)),
    "no model": lambda i: orjson.dumps(_event(i, model_id=DROP)),
    "unknown model": lambda i: orjson.dumps(_event(i, model_id="m9")),
    "int model": lambda i: orjson.dumps(_event(i, model_id=5)),
    "duplicate key": lambda i: orjson.dumps(_event(i)).replace(b'"score":', b'"score":"first","score":', 1),
    "not json": lambda i: b"{oops " + str(i).encode(),
    "invalid utf8": lambda i: b'{"event_id": "\xff\xfe"}',
    "nan": lambda i: orjson.dumps(_event(i)).replace(b'"score":0.25', b'"score":NaN'),
    "too large": lambda i: orjson.dumps(_event(i, pad="x" * MAX_BYTES)),
    "array root": lambda i: orjson.dumps([_event(i)]),
    "tombstone": lambda i: None,
    "empty": lambda i: b"",
}


def _assert_same(messages: list[bytes | None]) -> int:
    decoder = TypedPredictionDecoder.build(PARSERS, "model_id", MAX_BYTES)
    assert decoder is not None
    got = decoder.decode(messages)
    want, want_rejected = orjson_path(messages, PARSERS, MAX_BYTES)
    assert [(r.index, r.reason.value, r.detail) for r in got.rejections] == want_rejected
    assert set(got.batches) == set(want)
    for model, (rows, positions) in want.items():
        batch = got.batches[model]
        assert batch.positions.tolist() == positions
        assert np.array_equal(batch.rows.ts, rows.ts)
        assert batch.rows.event_ids == rows.event_ids
        assert np.array_equal(batch.rows.predicted, rows.predicted, equal_nan=True)
        assert np.array_equal(batch.rows.score, rows.score, equal_nan=True)
        assert [(type(v), v) for v in batch.rows.raw_predicted] == [(type(v), v) for v in rows.raw_predicted]
    return got.slow


def test_every_kind_of_message_alone_and_among_clean_ones() -> None:
    for kind, make in KINDS.items():
        alone = [make(0)]
        mixed = (
            [KINDS["clean"](i) for i in range(5)] + [make(5)] + [KINDS["clean reg"](i) for i in range(6, 9)]
        )
        for messages in (alone, mixed):
            try:
                _assert_same(messages)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from exc


def test_clean_batches_stay_on_the_fast_path_and_the_rest_is_counted() -> None:
    clean = [KINDS[k](i) for i, k in enumerate(["clean", "clean int", "clean reg"] * 20)]
    assert _assert_same(clean) == 0
    assert _assert_same([*clean, KINDS["no score"](61), KINDS["bad ts"](62), KINDS["new class"](63)]) == 0
    assert _assert_same([*clean, KINDS["scores"](61), KINDS["not json"](62)]) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=40), st.integers(0, 40))
def test_any_mixture_decodes_as_the_orjson_path_does(kinds: list[str], cut: int) -> None:
    messages = [KINDS[k](i) for i, k in enumerate(kinds)]
    _assert_same(messages)
    decoder = TypedPredictionDecoder.build(PARSERS, "model_id", MAX_BYTES)
    assert decoder is not None
    whole = decoder.decode(messages)
    head, tail = whole.split(cut)  # what a replay does at its merge horizon
    for part, lo, hi in ((head, 0, cut), (tail, cut, len(messages))):
        alone = decoder.decode(messages[lo:hi])
        assert [(r.index, r.reason) for r in part.rejections] == [
            (r.index, r.reason) for r in alone.rejections
        ]
        assert _positions(part) == _positions(alone)


def _positions(decoded: Any) -> dict[str, list[int]]:
    """Each model's row positions (a model whose every event was refused has none)."""
    return {m: b.positions.tolist() for m, b in decoded.batches.items() if len(b.positions)}


def test_nested_or_shared_field_paths_leave_the_orjson_path_alone() -> None:
    assert TypedPredictionDecoder.build({"m": PredictionParser(None, FieldPaths(ts="meta.ts"))}) is None
    assert TypedPredictionDecoder.build({"m": PredictionParser(None, FieldPaths(score="prediction"))}) is None
    assert TypedPredictionDecoder.build(PARSERS, model_id_field="meta.model") is None
