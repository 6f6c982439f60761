"""A ``scores`` object stands for the positive class's probability (binary) or the top confidence (multiclass)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_monitor.config.schema import ModelConfig
from stream_monitor.core.errors import ConfigError
from stream_monitor.core.events import RejectReason
from stream_monitor.core.outcome_parsing import PredictionParser, positive_class, score_of
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.stats.reference_builder import ReferenceBuilder


def _prediction(i: int, prediction: Any, scores: Any) -> dict[str, Any]:
    return {"event_id": f"p{i}", "model_id": "m", "ts": 1.7e9 + i, "prediction": prediction, "scores": scores}


def test_a_binary_models_scores_give_the_positive_class_probability_not_the_top_one() -> None:
    parser = PredictionParser([0, 1])
    rows, rejected = parser.parse(
        [_prediction(0, 0, {"0": 0.8, "1": 0.2}), _prediction(1, 1, {"0": 0.3, "1": 0.7})]
    )
    assert not rejected
    assert rows.score.tolist() == [0.2, 0.7]


@pytest.mark.parametrize(
    ("classes", "configured", "expected"),
    [
        ([0, 1], None, 1),
        ([1, 0], None, 1),
        ([False, True], None, True),
        (["no", "yes"], None, "yes"),
        (["stay", "churn"], "churn", "churn"),
        ([0, 1], 0, 0),
    ],
)
def test_the_positive_class_is_the_configured_one_else_the_larger(
    classes: list[Any], configured: Any, expected: Any
) -> None:
    chosen = positive_class(classes, configured)
    assert chosen == expected and type(chosen) is type(expected)


def test_a_configured_positive_class_that_is_no_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive_class 'gone' is not one of the classes"):
        positive_class(["stay", "churn"], "gone")
    with pytest.raises(ValueError, match="positive_class 1 is not one of the classes"):
        positive_class([False, True], 1)  # 1 == True in Python, but not as a class label


def test_the_configured_positive_class_picks_its_own_key() -> None:
    parser = PredictionParser(["stay", "churn"], positive="churn")
    rows, _ = parser.parse([_prediction(0, "stay", {"stay": 0.9, "churn": 0.1})])
    assert rows.score.tolist() == pytest.approx([0.1])


def test_boolean_classes_are_keyed_as_json_spells_them() -> None:
    rows, rejected = PredictionParser([False, True]).parse(
        [_prediction(0, False, {"false": 0.6, "true": 0.4})]
    )
    assert not rejected
    assert rows.score.tolist() == [0.4]


def test_scores_without_the_positive_class_are_a_dead_letter_with_the_reason() -> None:
    rows, rejected = PredictionParser([0, 1]).parse(
        [_prediction(0, 0, {"0": 0.8}), _prediction(1, 1, {"0": 0.3, "1": 0.7})]
    )
    assert [(r.index, r.reason) for r in rejected] == [(0, RejectReason.MISSING_FIELD)]
    assert "no probability for the positive class '1'" in rejected[0].detail
    assert rows.score.tolist() == [0.7]


def test_a_multiclass_models_scores_give_the_confidence_of_the_top_class() -> None:
    rows, rejected = PredictionParser(["a", "b", "c"]).parse(
        [_prediction(0, "b", {"a": 0.1, "b": 0.6, "c": 0.3})]
    )
    assert not rejected
    assert rows.score.tolist() == [0.6]


def test_score_of_says_why_it_refuses() -> None:
    assert score_of({"0": 0.25, "1": 0.75}, "1") == 0.75
    assert score_of({"a": 0.2, "b": 0.5}, None) == 0.5
    assert score_of({"0": 0.5}, "1", "out.p") == (
        RejectReason.MISSING_FIELD,
        "'out.p' has no probability for the positive class '1'",
    )
    assert score_of({"0": "high", "1": 0.5}, "1") == (
        RejectReason.WRONG_TYPE,
        "'scores' values must be finite numbers",
    )
    assert np.isnan(PredictionParser([0, 1]).parse([_prediction(0, 1, None)])[0].score[0])


def _reference_predictions(n: int) -> list[dict[str, Any]]:
    """A binary model whose positive class (1) is rare: the top score is always the negative class's."""
    return [
        _prediction(i, 1 if i % 10 == 0 else 0, {"0": 0.8 - (i % 5) / 100, "1": 0.2 + (i % 5) / 100})
        for i in range(n)
    ]


def test_reference_build_reads_scores_as_the_service_does() -> None:
    builder = ReferenceBuilder()
    builder.add_features({**e, "features": {"x": 1.0}} for e in _reference_predictions(200))
    builder.add_predictions(_reference_predictions(200))
    score = builder.build().models["m"].predictions.score  # type: ignore[union-attr]
    assert score is not None
    assert score.min == pytest.approx(0.2) and score.max == pytest.approx(0.24)


def test_a_positive_class_the_reference_does_not_have_is_a_config_problem_with_its_path() -> None:
    builder = ReferenceBuilder()
    builder.add_features({**e, "features": {"x": 1.0}} for e in _reference_predictions(200))
    builder.add_predictions(_reference_predictions(200))
    profile = builder.build().models["m"]
    with pytest.raises(ConfigError, match=r"models\.m\.positive_class.*'1' is not one of the classes"):
        ModelLayout.build("m", ModelConfig(reference="r.json", positive_class="1"), profile)
    layout = ModelLayout.build("m", ModelConfig(reference="r.json", positive_class=0), profile)
    assert layout.positive_class == 0
