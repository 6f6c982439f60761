"""Columnar parsing: the fast path and the per-value path agree, and every cell says why it is missing."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.core.envelope import route_by_model
from stream_monitor.core.events import RejectReason
from stream_monitor.core.feature_parsing import FeatureParser
from stream_monitor.core.outcome_parsing import LabelParser, PredictionParser
from stream_monitor.core.rows import ABSENT, CAT_ABSENT, CAT_NULL, CAT_WRONG_TYPE, INFINITE, NULL, WRONG_TYPE


def _event(i: int, **features: object) -> dict[str, object]:
    return {"event_id": f"e{i}", "model_id": "m", "ts": 1.7e9 + i, "features": features}


PARSER = FeatureParser(numeric=["x", "y"], categorical={"plan": ["free", "pro"]}, boolean=[])


def test_fast_path_reads_floats_ints_and_nulls() -> None:
    rows, rejected = PARSER.parse([_event(0, x=1.5, y=2, plan="pro"), _event(1, x=None, y=3.0, plan="free")])
    assert not rejected
    assert rows.numeric[0].tolist() == [1.5, 2.0]
    assert np.isnan(rows.numeric[1, 0])
    assert rows.numeric_code.tolist() == [[0, 0], [NULL, 0]]
    assert rows.categorical[:, 0].tolist() == [1, 0]
    assert rows.event_ids == ["e0", "e1"]


def test_every_kind_of_missing_or_wrong_value_is_coded() -> None:
    events = [
        _event(0, x="41", y=True, plan=3.5),  # numeric string, boolean, float category
        _event(1, y=float("inf"), plan=None),  # x absent, infinite, null category
        _event(2, x=float("nan"), y=[1], plan="gold"),  # NaN, list, unseen category
        _event(3, x=2.0, y=1.0),  # plan absent
    ]
    rows, rejected = PARSER.parse(events)
    assert not rejected
    assert rows.numeric_code.tolist() == [
        [WRONG_TYPE, WRONG_TYPE],
        [ABSENT, INFINITE],
        [NULL, WRONG_TYPE],
        [0, 0],
    ]
    assert np.isnan(rows.numeric[:3]).all()
    assert rows.categorical[:, 0].tolist() == [CAT_WRONG_TYPE, CAT_NULL, 2, CAT_ABSENT]
    assert rows.new_values == [[(2, "gold")]]


def test_a_boolean_among_numbers_is_caught_even_when_the_batch_looks_numeric() -> None:
    rows, _ = PARSER.parse([_event(0, x=1.0, y=0.0, plan="pro"), _event(1, x=True, y=0.0, plan="pro")])
    assert rows.numeric_code[:, 0].tolist() == [0, WRONG_TYPE]
    assert rows.numeric_code[:, 1].tolist() == [0, 0]


def test_fast_and_slow_paths_agree() -> None:
    rng = np.random.default_rng(3)
    clean = [_event(i, x=float(rng.normal()), y=int(rng.integers(5)), plan="free") for i in range(200)]
    fast, _ = PARSER.parse(clean)
    slow, _ = PARSER.parse([*clean, _event(999, x="oops", y=1, plan="free")])
    assert np.array_equal(fast.numeric, slow.numeric[:200])
    assert np.array_equal(fast.numeric_code, slow.numeric_code[:200])


def test_unknown_fields_are_reported() -> None:
    rows, _ = PARSER.parse([_event(0, x=1.0, y=1.0, plan="pro", extra=1, more="a")])
    assert sorted(k for _, k in rows.unknown_fields) == ["extra", "more"]


def test_envelope_problems_reject_the_event_with_a_reason() -> None:
    events = [
        {"model_id": "m", "ts": 1.7e9, "features": {}},
        {"event_id": "a", "model_id": "m", "features": {}},
        {"event_id": "b", "model_id": "m", "ts": "soon", "features": {}},
        {"event_id": "c", "model_id": "m", "ts": 1.7e9, "features": [1]},
        {"event_id": {"x": 1}, "model_id": "m", "ts": 1.7e9, "features": {}},
        _event(5, x=1.0, y=2.0, plan="pro"),
    ]
    rows, rejected = PARSER.parse(events)
    assert len(rows) == 1 and rows.event_ids == ["e5"]
    assert [(r.index, r.reason) for r in rejected] == [
        (0, RejectReason.MISSING_FIELD),
        (1, RejectReason.MISSING_FIELD),
        (2, RejectReason.BAD_TIMESTAMP),
        (3, RejectReason.WRONG_TYPE),
        (4, RejectReason.WRONG_TYPE),
    ]


def test_predictions_with_scores_or_score_maps() -> None:
    parser = PredictionParser(classes=[0, 1])
    events = [
        {"event_id": "a", "model_id": "m", "ts": 1.7e9, "prediction": 1, "score": 0.8},
        {"event_id": "b", "model_id": "m", "ts": 1.7e9, "prediction": 0, "scores": {"0": 0.7, "1": 0.3}},
        {"event_id": "c", "model_id": "m", "ts": 1.7e9, "prediction": 0},
        {"event_id": "d", "model_id": "m", "ts": 1.7e9, "prediction": 1, "score": "high"},
        {"event_id": "e", "model_id": "m", "ts": 1.7e9},
    ]
    rows, rejected = parser.parse(events)
    assert rows.predicted.tolist() == [1.0, 0.0, 0.0]
    assert rows.score[:2].tolist() == [0.8, 0.3] and np.isnan(rows.score[2])  # class 1's probability
    assert [(r.index, r.reason) for r in rejected] == [
        (3, RejectReason.WRONG_TYPE),
        (4, RejectReason.MISSING_FIELD),
    ]


def test_regression_labels_must_be_numbers() -> None:
    parser = LabelParser(classes=None)
    rows, rejected = parser.parse(
        [
            {"event_id": "a", "model_id": "m", "ts": 1.7e9, "label": 3.5},
            {"event_id": "b", "model_id": "m", "ts": 1.7e9, "label": "x"},
        ]
    )
    assert rows.label.tolist() == [3.5]
    assert rejected[0].reason is RejectReason.WRONG_TYPE


@pytest.mark.parametrize(
    ("model", "reason"),
    [(None, RejectReason.MISSING_FIELD), (7, RejectReason.WRONG_TYPE), ("nope", RejectReason.UNKNOWN_MODEL)],
)
def test_routing_rejects_unknown_or_missing_models(model: object, reason: RejectReason) -> None:
    events: list[dict[str, object]] = [
        {"model_id": "m"},
        {"model_id": model} if model is not None else {},
        {"model_id": "m"},
    ]
    groups, rejected = route_by_model(events, "model_id", {"m": object()})
    assert groups == {"m": [0, 2]}
    assert [(r.index, r.reason) for r in rejected] == [(1, reason)]


def test_one_bad_column_leaves_the_others_on_the_fast_path_and_a_numeric_string_is_never_a_number() -> None:
    events = [_event(i, x=float(i), y=2.5, plan="pro") for i in range(50)]
    events[7]["features"]["x"] = "1.5"  # type: ignore[index]
    events[9]["features"]["x"] = None  # type: ignore[index]
    rows, rejected = PARSER.parse(events)
    assert not rejected
    expected_x = [0] * 50
    expected_x[7], expected_x[9] = WRONG_TYPE, NULL
    assert rows.numeric_code[:, 0].tolist() == expected_x
    assert rows.numeric_code[:, 1].tolist() == [0] * 50
    assert rows.numeric[8].tolist() == [8.0, 2.5]


def test_an_integer_beyond_float_range_is_counted_not_raised() -> None:
    rows, _ = PARSER.parse(
        [_event(0, x=10**400, y=1.5, plan="pro"), _event(1, x=None, y=-(10**400), plan="pro")]
    )
    assert rows.numeric_code.tolist() == [[INFINITE, 0], [NULL, INFINITE]]


def test_only_strings_and_integers_are_categories() -> None:
    strings = [_event(i, x=1.5, y=2.5, plan=v) for i, v in enumerate(["pro", 2.0, True, [1], 7, "free"])]
    rows, _ = PARSER.parse(strings)
    assert rows.categorical[:, 0].tolist() == [1, CAT_WRONG_TYPE, CAT_WRONG_TYPE, CAT_WRONG_TYPE, 2, 0]
    assert rows.new_values == [[(4, 7)]]
    ints = FeatureParser(numeric=[], categorical={"tier": [1, 2]})
    rows, _ = ints.parse([_event(i, tier=v) for i, v in enumerate([1, True, 1.0, 2])])
    assert rows.categorical[:, 0].tolist() == [0, CAT_WRONG_TYPE, CAT_WRONG_TYPE, 1]
