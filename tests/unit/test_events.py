"""Decoding, field paths and timestamps: every bad input becomes a typed rejection, never an exception."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from stream_monitor.core.events import (
    MISSING,
    FieldPath,
    RejectReason,
    _decode_whole,
    decode_batch,
    parse_timestamps,
)

GOOD = orjson.dumps({"event_id": "e1", "model_id": "m", "ts": 1.7e9, "features": {"x": 1}})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", RejectReason.NOT_JSON),
        (b"\xff\xfe{}", RejectReason.INVALID_UTF8),
        (b'{"x": NaN}', RejectReason.NON_FINITE_NUMBER),
        (b'{"x": -Infinity}', RejectReason.NON_FINITE_NUMBER),
        (b'{"x": 1e400}', RejectReason.NON_FINITE_NUMBER),
        (b"[" * 5000 + b"]" * 5000, RejectReason.TOO_DEEP),
        (b"[1, 2]", RejectReason.NOT_OBJECT),
        (b'"text"', RejectReason.NOT_OBJECT),
        (b"", RejectReason.EMPTY_MESSAGE),
        (None, RejectReason.EMPTY_MESSAGE),
        (b"{" + b" " * 30_000 + b"}", RejectReason.TOO_LARGE),
    ],
)
def test_each_poison_message_gets_its_reason(raw: bytes | None, reason: RejectReason) -> None:
    events, kept, rejected = decode_batch([GOOD, raw, GOOD], max_bytes=20_000)
    assert kept == [0, 2]
    assert len(events) == 2
    assert [(r.index, r.reason) for r in rejected] == [(1, reason)]
    assert rejected[0].detail


def test_a_clean_batch_decodes_in_one_pass_as_message_by_message() -> None:
    clean = [orjson.dumps({"event_id": f"e{i}", "ts": 1.7e9 + i, "v": [i, None, "x"]}) for i in range(50)]
    assert _decode_whole(clean, 20_000) == [orjson.loads(m) for m in clean]
    assert decode_batch(clean, 20_000) == ([orjson.loads(m) for m in clean], list(range(50)), [])
    # anything that needs its own look leaves the one pass to the walk that names it
    for poison in (b"", None, b"[1]", b"{oops", GOOD + b"," + GOOD, b"{" + b" " * 30_000 + b"}"):
        assert _decode_whole([*clean, poison], 20_000) is None
        assert len(decode_batch([*clean, poison], 20_000)[2]) == 1


def test_a_string_containing_nan_is_fine() -> None:
    events, _, rejected = decode_batch([b'{"plan": "NaN", "note": "Infinity"}'])
    assert not rejected
    assert events[0]["plan"] == "NaN"


def test_field_path_reads_nested_and_missing() -> None:
    events = [{"a": {"b": 1}}, {"a": {"c": 2}}, {"a": None}, {}]
    assert FieldPath("a.b").get_all(events) == [1, MISSING, MISSING, MISSING]
    assert FieldPath("a").get_all([{"a": 1}, {}]) == [1, MISSING]
    with pytest.raises(ValueError, match="invalid field path"):
        FieldPath("a..b")


def test_timestamps_in_every_format() -> None:
    values = [
        1763766000.125,
        1763766000125,
        "2025-11-21T23:00:00Z",
        "2025-11-21T23:00:00",
        "2025-11-22T00:00:00+01:00",
    ]
    ts, errors = parse_timestamps(values, "auto")
    assert errors == []
    assert ts[0] == pytest.approx(1763766000.125)
    assert ts[1] == pytest.approx(1763766000.125)
    assert ts[2] == ts[3] == ts[4] == pytest.approx(1763766000.0)


def test_millis_when_configured_and_bad_timestamps_named() -> None:
    ts, errors = parse_timestamps([1763766000125, 1763766000126], "epoch_millis")
    assert not errors and ts[1] == pytest.approx(1763766000.126)
    ts, errors = parse_timestamps(["yesterday", None, True, -5, 1.7e9, MISSING], "auto")
    assert [i for i, _ in errors] == [0, 1, 2, 3, 5]
    assert math.isnan(ts[0]) and ts[4] == 1.7e9
    assert "ISO-8601" in errors[0][1]


def test_fast_path_flags_out_of_range_numbers() -> None:
    ts, errors = parse_timestamps([1.7e9, 12.0, float("inf")], "epoch_seconds")
    assert [i for i, _ in errors] == [1, 2]
    assert np.isnan(ts[1:]).all()
