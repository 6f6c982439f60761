"""Hostile input beyond the poison matrix: generated messages through every decoder and parser, generated
configs through ``parse_config``, and messages too big (10 MB, a million keys) refused within bounded memory.

Every property counts what it saw: each message is accepted or rejected with a reason, never both, never
neither, and nothing raises. The default run (CI) fuzzes 5,300 inputs in about 12 s; the ``nightly`` tests
(``scripts/nightly.sh``, about 4 minutes) run 100k generated inputs in all.
"""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_monitor.config.loading import parse_config
from stream_monitor.core.errors import ConfigError
from stream_monitor.core.events import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_KEYS,
    RejectReason,
    decode_batch,
)
from stream_monitor.core.outcome_parsing import LabelParser, PredictionParser
from stream_monitor.core.typed_decoding import TypedFeatureDecoder
from tests.unit.test_typed_decoding import KINDS, MAX_BYTES, PARSERS, _assert_same

# (fast budget, slow budget) in generated inputs: messages for the decoders, configs for parse_config.
BUDGETS = {
    "decode_batch": (2_000, 40_000),
    "typed": (1_500, 30_000),
    "outcomes": (1_500, 20_000),
    "config": (300, 10_000),
}
REASONS = {r.value for r in RejectReason}

# ---- generated messages --------------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_ts = st.one_of(
    st.floats(min_value=1.0e9, max_value=2.0e9),
    st.integers(min_value=1_000_000_000_000, max_value=2_000_000_000_000),
    st.sampled_from(["2025-11-22T10:00:00Z", "2025-11-22 10:00", "yesterday", ""]),
    _json,
)
_features = st.dictionaries(
    st.sampled_from(["x", "y", "plan", "vip", "tier", "z", ""]) | st.text(max_size=5), _json | _ts, max_size=6
)


@st.composite
def _event(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for key, values in (
        ("event_id", st.text(max_size=8) | _json),
        ("model_id", st.sampled_from(["m1", "m2", "m9", ""]) | _json),
        ("ts", _ts),
        ("features", _features | _json),
        ("prediction", st.sampled_from([0, 1, "a", "b", True]) | _json),
        ("score", st.floats(0, 1) | _json),
        ("scores", st.dictionaries(st.sampled_from(["a", "b"]), st.floats(0, 1) | _json, max_size=2)),
        ("label", st.sampled_from([0, 1, "a", "b"]) | _json),
    ):
        if draw(st.booleans()):
            event[key] = draw(values)
    return event


def _encode(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity literals included (what careless producers send)."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid-looking event with bytes cut, flipped or spliced in."""
    raw = bytearray(_encode(draw(_event())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        op = draw(st.sampled_from(["cut", "flip", "insert"]))
        if op == "cut":
            del raw[at:]
        elif op == "flip" and raw:
            raw[at] = draw(st.integers(0, 255))
        else:
            raw[at:at] = draw(st.sampled_from([b"\xff", b"NaN", b"[" * 40, b'"', b"\\u0000", b",", b"}"]))
    return bytes(raw)


_outcome_event = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=8),
        "model_id": st.just("m1"),
        "ts": st.floats(min_value=1.7e9, max_value=1.8e9),
        "prediction": st.sampled_from(["a", "b", 0, 1]),
        "score": st.floats(0, 1),
        "label": st.sampled_from(["a", "b", 0, 1, 0.5]),
    }
)  # well-formed predictions and labels, so every run sees accepted ones too

_message = st.one_of(
    st.none(),
    _outcome_event.map(orjson.dumps),
    st.binary(max_size=64),
    _json.map(_encode),
    _event().map(_encode),
    _event().map(lambda e: json.dumps(e, separators=(",", ":")).encode()),  # compact, as orjson writes
    _mutated(),
    st.sampled_from(sorted(KINDS)).map(lambda k: KINDS[k](0)),
)
_batch = st.lists(_message, min_size=1, max_size=30)

_FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _run(budget: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], int]) -> int:
    """Run ``check`` on generated examples until ``budget`` inputs were seen; returns how many."""
    seen = [0]

    @settings(_FUZZ, max_examples=max(budget // 15, 10))
    @given(strategy)
    def prop(example: Any) -> None:
        seen[0] += check(example)

    while seen[0] < budget:
        prop()
    return seen[0]


def _sizes() -> list[Any]:
    return [pytest.param(False, id="fast"), pytest.param(True, id="nightly", marks=pytest.mark.nightly)]


def _assert_partition(n: int, kept: list[int], rejected: list[Any]) -> None:
    at = sorted([*kept, *(r.index for r in rejected)])
    assert at == list(range(n)), "every message is accepted or rejected, exactly once"
    for r in rejected:
        assert r.reason.value in REASONS and r.detail


# ---- the properties ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("slow", _sizes())
def test_decode_batch_accepts_or_rejects_every_message(slow: bool) -> None:
    outcomes: Counter[str] = Counter()

    def check(messages: list[bytes | None]) -> int:
        events, kept, rejected = decode_batch(messages, MAX_BYTES)
        _assert_partition(len(messages), kept, rejected)
        assert len(events) == len(kept) and all(type(e) is dict for e in events)
        outcomes["accepted"] += len(kept)
        outcomes.update(r.reason.value for r in rejected)
        return len(messages)

    n = _run(BUDGETS["decode_batch"][slow], _batch, check)
    assert sum(outcomes.values()) == n
    assert outcomes["accepted"] and outcomes["not_json"] and outcomes["non_finite_number"]


@pytest.mark.parametrize("slow", _sizes())
def test_typed_decoder_agrees_with_the_orjson_path_on_generated_messages(slow: bool) -> None:
    decoder = TypedFeatureDecoder.build(PARSERS, "model_id", MAX_BYTES)
    assert decoder is not None
    outcomes: Counter[str] = Counter()

    def check(messages: list[bytes | None]) -> int:
        _assert_same(messages)  # rows, positions and rejections (reason and detail) as the orjson path's
        out = decoder.decode(messages)
        kept = [int(p) for b in out.batches.values() for p in b.positions]
        _assert_partition(len(messages), kept, out.rejections)
        outcomes["accepted"] += len(kept)
        outcomes["rejected"] += len(out.rejections)
        return len(messages)

    n = _run(BUDGETS["typed"][slow], _batch, check)
    assert outcomes["accepted"] + outcomes["rejected"] == n and outcomes["accepted"]


@pytest.mark.parametrize("slow", _sizes())
def test_prediction_and_label_parsers_accept_or_reject_every_event(slow: bool) -> None:
    parsers = [
        PredictionParser(["a", "b"]),
        PredictionParser(None),
        LabelParser([0, 1]),
        LabelParser(None),
    ]
    outcomes: Counter[str] = Counter()

    def check(messages: list[bytes | None]) -> int:
        events, _, _ = decode_batch(messages, MAX_BYTES)
        for parser in parsers:
            rows, rejected = parser.parse(events)
            assert len(rows) + len(rejected) == len(events)
            assert sorted(r.index for r in rejected) == sorted({r.index for r in rejected})
            assert all(r.reason.value in REASONS and r.detail for r in rejected)
            outcomes["accepted"] += len(rows)
            outcomes["rejected"] += len(rejected)
        return len(messages)

    n = _run(BUDGETS["outcomes"][slow], _batch, check)
    assert outcomes["accepted"] and outcomes["rejected"] and n >= BUDGETS["outcomes"][slow]


# ---- generated configs ----------------------------------------------------------------------------------------
_config_values = _json | st.sampled_from(
    ["psi", "ks", "auto", "fixed", "SASL_SSL", "${NO_SUCH_ENV}", -1, 0, 1e9]
)
_model = st.fixed_dictionaries(
    {"reference": st.sampled_from(["r.json", ""]) | _config_values},
    optional={
        "window": st.dictionaries(
            st.sampled_from(["max_events", "max_seconds", "min_events", "slice_seconds", "max_event"]),
            _config_values,
            max_size=3,
        ),
        "default_test": _config_values,
        "features": st.dictionaries(
            st.text(max_size=4),
            st.dictionaries(st.sampled_from(["enabled", "test", "sequential"]), _config_values, max_size=2),
            max_size=2,
        ),
        "budget": st.dictionaries(st.sampled_from(["false_alerts_per_day"]), _config_values),
        "thresholds": _config_values,
    },
)
_config = (
    st.fixed_dictionaries(
        {},
        optional={
            "models": st.dictionaries(st.text(max_size=5), _model | _config_values, max_size=2)
            | _config_values,
            "kafka": st.dictionaries(
                st.sampled_from(["bootstrap_servers", "client", "clients"]),
                _config_values
                | st.dictionaries(
                    st.sampled_from(["sasl.password", "security.protocol", "x"]), _config_values
                ),
                max_size=2,
            ),
            "service": st.dictionaries(
                st.sampled_from(
                    ["metrics_port", "bind_host", "max_message_bytes", "batch_max_events", "nope"]
                ),
                _config_values,
                max_size=3,
            ),
            "topics": st.dictionaries(st.sampled_from(["features", "alerts", "partitions"]), _config_values),
        },
    )
    | _config_values
)


@pytest.mark.parametrize("slow", _sizes())
def test_parse_config_accepts_or_reports_every_generated_config(slow: bool) -> None:
    outcomes: Counter[str] = Counter()

    def check(raw: Any) -> int:
        problems: list[tuple[str, str]] | None = None
        try:
            parse_config(raw)
        except ConfigError as exc:
            problems = exc.problems
        if problems is None:
            outcomes["accepted"] += 1
        else:
            assert problems and all(isinstance(m, str) and m for _, m in problems)
            outcomes["rejected"] += 1
        return 1

    n = _run(BUDGETS["config"][slow], _config, check)
    assert outcomes["accepted"] + outcomes["rejected"] == n and outcomes["rejected"]


def test_the_slow_budgets_add_up_to_100k_inputs() -> None:
    assert sum(slow for _, slow in BUDGETS.values()) == 100_000


# ---- too big ---------------------------------------------------------------------------------------------------
TEN_MB = (
    b'{"event_id":"e","model_id":"m1","ts":1.7e9,"features":{"x":1,"pad":"'
    + b"x" * (10 * 1024 * 1024)
    + b'"}}'
)
MILLION_KEYS = (
    b'{"event_id":"e","model_id":"m1","ts":1.7e9,"features":{'
    + b",".join(b'"k%d":0' % i for i in range(1_000_000))
    + b"}}"
)
PEAK_BOUND = 1 << 20  # bytes allocated while refusing one of them (the message itself is not counted)


def _peak(call: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "cap", [DEFAULT_MAX_MESSAGE_BYTES, 16 * 1024 * 1024], ids=["default cap", "16 MiB cap"]
)
def test_a_million_keys_are_refused_in_bounded_memory_whatever_the_byte_cap(cap: int) -> None:
    (events, _, rejected), peak = _peak(lambda: decode_batch([MILLION_KEYS], cap))
    assert events == [] and [r.reason for r in rejected] == [RejectReason.TOO_LARGE]
    assert ("bytes exceeds" if cap < len(MILLION_KEYS) else f"at most {MAX_MESSAGE_KEYS}") in rejected[
        0
    ].detail
    assert peak < PEAK_BOUND, peak
    decoder = TypedFeatureDecoder.build(PARSERS, "model_id", cap)
    assert decoder is not None
    out, peak = _peak(lambda: decoder.decode([MILLION_KEYS, KINDS["clean"](1)]))
    assert [(r.index, r.reason) for r in out.rejections] == [(0, RejectReason.TOO_LARGE)]
    assert out.batches["m1"].positions.tolist() == [1]
    assert peak < PEAK_BOUND, peak


def test_a_10_mb_message_is_refused_in_bounded_memory() -> None:
    (events, _, rejected), peak = _peak(lambda: decode_batch([TEN_MB]))
    assert events == [] and [r.reason for r in rejected] == [RejectReason.TOO_LARGE]
    assert f"message of {len(TEN_MB)} bytes exceeds the 1048576 cap" == rejected[0].detail
    assert peak < PEAK_BOUND, peak
    decoder = TypedFeatureDecoder.build(PARSERS)
    assert decoder is not None
    out, peak = _peak(lambda: decoder.decode([TEN_MB]))
    assert [r.reason for r in out.rejections] == [RejectReason.TOO_LARGE] and not out.batches
    assert peak < PEAK_BOUND, peak


def test_many_colons_in_a_string_under_the_key_bound_still_decode() -> None:
    raw = orjson.dumps({**orjson.loads(KINDS["clean"](0)), "note": ":" * (MAX_MESSAGE_KEYS - 10)})
    _, kept, rejected = decode_batch([raw], 1 << 21)
    assert kept == [0] and not rejected


@pytest.mark.parametrize(
    ("raw", "row"),
    [
        ({"[": None}, "config: [: unknown key"),
        (
            {"models": {"m": {"reference": "r.json", "window[0]": 1}}},
            "models.m.window[0]: unknown key (did you mean",
        ),
    ],
)
def test_an_unknown_key_with_a_bracket_is_reported_not_raised(raw: dict[str, Any], row: str) -> None:
    """Found by the config fuzz: such a key was dropped from the path as if pydantic had written it, and the
    report raised IndexError."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert any(row in r for r in caught.value.report()), caught.value.report()
