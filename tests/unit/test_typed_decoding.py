"""The typed fast path gives exactly what the orjson path gives, message for message, whatever the mixture."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.core.envelope import FieldPaths
from stream_monitor.core.feature_parsing import FeatureParser
from stream_monitor.core.typed_decoding import TypedFeatureDecoder
from tests.orjson_path import orjson_path

MAX_BYTES = 4096
PARSERS = {
    "m1": FeatureParser(
        numeric=["x", "y"], categorical={"plan": ["free", "pro"], "vip": [False, True]}, boolean=["vip"]
    ),
    "m2": FeatureParser(numeric=["x"], categorical={"tier": [1, 2]}),
}


def _event(i: int, model: str = "m1", **changes: Any) -> dict[str, Any]:
    features: dict[str, Any] = (
        {"x": 1.5 + i, "y": -2.0, "plan": "pro", "vip": False} if model == "m1" else {"x": 0.5 * i, "tier": 2}
    )
    features.update(changes.pop("features", {}))
    event: dict[str, Any] = {"event_id": f"e{i}", "model_id": model, "ts": 1.7e9 + i}
    event.update(changes)
    event["features"] = {k: v for k, v in features.items() if v is not DROP}
    return {k: v for k, v in event.items() if v is not DROP}


DROP = object()  # a key left out

# Messages that every path must treat alike: clean ones, atypical but valid ones, and poison.
KINDS: dict[str, Any] = {
    "clean": lambda i: orjson.dumps(_event(i)),
    "clean m2": lambda i: orjson.dumps(_event(i, "m2")),
    "int x": lambda i: orjson.dumps(_event(i, features={"x": 7})),
    "null x": lambda i: orjson.dumps(_event(i, features={"x": None})),
    "absent y": lambda i: orjson.dumps(_event(i, features={"y": DROP})),
    "bool x": lambda i: orjson.dumps(_event(i, features={"x": True})),
    "string x": lambda i: orjson.dumps(_event(i, features={"x": "1.5"})),
    "new plan": lambda i: orjson.dumps(_event(i, features={"plan": "gold"})),
    "int plan": lambda i: orjson.dumps(_event(i, features={"plan": 3})),
    "float plan": lambda i: orjson.dumps(_event(i, features={"plan": 3.5})),
    "list plan": lambda i: orjson.dumps(_event(i, features={"plan": [1]})),
    "null vip": lambda i: orjson.dumps(_event(i, features={"vip": None})),
    "int vip": lambda i: orjson.dumps(_event(i, features={"vip": 1})),
    "bool tier": lambda i: orjson.dumps(_event(i, "m2", features={"tier": True})),
    "string tier": lambda i: orjson.dumps(_event(i, "m2", features={"tier": "2"})),
    "extra feature": lambda i: orjson.dumps(_event(i, features={"z": 1})),
    "extra envelope": lambda i: orjson.dumps(_event(i, source="web")),
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
    "features null": lambda i: orjson.dumps({**_event(i), "features": None}),
    "features list": lambda i: orjson.dumps({**_event(i), "features": [1]}),
    "no features": lambda i: orjson.dumps({**_event(i), "features": DROP}, default=lambda _: None).replace(
        b',"features":null', b""
    ),
    "duplicate key": lambda i: orjson.dumps(_event(i)).replace(b'"x":', b'"x":"first","x":', 1),
    "duplicate id": lambda i: orjson.dumps(_event(i)).replace(
        b'{"event_id"', b'{"event_id":"other","event_id"'
    ),
    "not json": lambda i: b"{oops " + str(i).encode(),
    "invalid utf8": lambda i: b'{"event_id": "\xff\xfe"}',
    "invalid utf8 in extra": lambda i: orjson.dumps(_event(i)).replace(
        b'{"event_id"', b'{"a":"\xff","event_id"'
    ),
    "huge number in extra": lambda i: orjson.dumps(_event(i)).replace(
        b'{"event_id"', b'{"a":1e400,"event_id"'
    ),
    "nan": lambda i: orjson.dumps(_event(i)).replace(b'"x":', b'"x":NaN,"q":'),
    "deep": lambda i: b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}",
    "deep but allowed": lambda i: orjson.dumps(_event(i)).replace(
        b'{"event_id"', b'{"a":' + b"[" * 600 + b"]" * 600 + b',"event_id"'
    ),
    "too large": lambda i: orjson.dumps(_event(i, pad="x" * MAX_BYTES)),
    "array root": lambda i: orjson.dumps([_event(i)]),
    "tombstone": lambda i: None,
    "empty": lambda i: b"",
}


def _assert_same(messages: list[bytes | None]) -> int:
    decoder = TypedFeatureDecoder.build(PARSERS, "model_id", MAX_BYTES)
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
        assert np.array_equal(batch.rows.numeric, rows.numeric, equal_nan=True)
        assert np.array_equal(batch.rows.numeric_code, rows.numeric_code)
        assert np.array_equal(batch.rows.categorical, rows.categorical)
        assert batch.rows.new_values == rows.new_values
        assert batch.rows.unknown_fields == rows.unknown_fields
    return got.slow


def test_every_kind_of_message_alone_and_among_clean_ones() -> None:
    for kind, make in KINDS.items():
        alone = [make(0)]
        mixed = (
            [KINDS["clean"](i) for i in range(5)] + [make(5)] + [KINDS["clean m2"](i) for i in range(6, 9)]
        )
        for messages in (alone, mixed):
            try:
                _assert_same(messages)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from exc


def test_clean_batches_stay_on_the_fast_path_and_the_rest_is_counted() -> None:
    clean = [KINDS["clean"](i) for i in range(50)] + [KINDS["clean m2"](i) for i in range(50, 60)]
    assert _assert_same(clean) == 0
    assert _assert_same([*clean, KINDS["null x"](61), KINDS["absent y"](62), KINDS["new plan"](63)]) == 0
    assert _assert_same([*clean, KINDS["bool x"](61), KINDS["not json"](62)]) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=40))
def test_any_mixture_decodes_as_the_orjson_path_does(kinds: list[str]) -> None:
    _assert_same([KINDS[k](i) for i, k in enumerate(kinds)])


def test_nested_field_paths_leave_the_orjson_path_alone() -> None:
    nested = {"m": FeatureParser(["x"], {}, paths=FieldPaths(ts="meta.ts"))}
    assert TypedFeatureDecoder.build(nested) is None
    assert TypedFeatureDecoder.build(PARSERS, model_id_field="meta.model") is None
