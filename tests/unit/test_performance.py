"""PerformanceSketch: hand-computed metrics, binned AUC/ECE, merge properties, CBPE on a calibrated model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.stats.performance import PerformanceSketch, Task, expected_performance


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def assert_same_state(a: PerformanceSketch, b: PerformanceSketch) -> None:
    da, db = a.to_dict(), b.to_dict()
    for key in ("count", "prediction_count", "confusion", "score_hist", "predicted_counts"):
        assert da[key] == db[key], key
    np.testing.assert_allclose(da["score_sum"], db["score_sum"], rtol=1e-12, atol=1e-9)
    for group in ("sums", "expected"):
        for key in da[group]:
            assert da[group][key] == pytest.approx(db[group][key], rel=1e-12, abs=1e-9), (group, key)


def test_binary_metrics_match_hand_computation() -> None:
    predicted = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 0, 1, 1, 0])
    scores = np.array([0.8, 0.6, 0.3, 0.4, 0.9, 0.1])
    sk = PerformanceSketch("binary")
    sk.fold(predicted, scores, labels)
    m = sk.metrics()
    # tp=2 (0, 4), fp=1 (1), fn=1 (3), tn=2 (2, 5)
    assert m["count"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["error_rate"] == pytest.approx(2 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    y = labels.astype(float)
    assert m["brier"] == pytest.approx(np.mean((scores - y) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(scores) + (1 - y) * np.log(1 - scores)))
    # positives 0.8, 0.4, 0.9 vs negatives 0.6, 0.3, 0.1: only 0.4 < 0.6 is misordered
    assert m["auc"] == pytest.approx(8 / 9)
    assert m["scored_count"] == 6


def test_ece_matches_hand_computation() -> None:
    # two bins of 10 on [0, 1]: scores 0.15 (bin 1) and 0.85 (bin 8)
    sk = PerformanceSketch("binary", n_score_bins=10)
    scores = np.array([0.15, 0.15, 0.15, 0.15, 0.85, 0.85])
    labels = np.array([0, 0, 0, 1, 1, 0])
    sk.fold((scores >= 0.5).astype(int), scores, labels)
    # bin 1: mean score 0.15, positive rate 0.25 -> gap 0.10, weight 4/6
    # bin 8: mean score 0.85, positive rate 0.5 -> gap 0.35, weight 2/6
    assert sk.metrics()["ece"] == pytest.approx(4 / 6 * 0.10 + 2 / 6 * 0.35)


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    sk = PerformanceSketch("binary", n_score_bins=4)
    scores = np.array([0.25] * 4 + [0.75] * 4)
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    sk.fold((scores > 0.5).astype(int), scores, labels)
    assert sk.metrics()["ece"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 19), st.integers(0, 1)),
        min_size=2,
        max_size=200,
    ).filter(lambda pairs: len({y for _, y in pairs}) == 2)
)
def test_binned_auc_equals_exact_auc_when_scores_sit_on_bin_centers(pairs: list[tuple[int, int]]) -> None:
    bins, labels = np.array([b for b, _ in pairs]), np.array([y for _, y in pairs])
    scores = (bins + 0.5) / 20
    sk = PerformanceSketch("binary", n_score_bins=20)
    sk.fold((scores >= 0.5).astype(int), scores, labels)
    assert sk.metrics()["auc"] == pytest.approx(exact_auc(scores, labels), abs=1e-12)


def test_auc_undefined_with_one_class_and_nan_scores_ignored() -> None:
    sk = PerformanceSketch("binary")
    sk.fold([1, 0], [0.7, 0.2], [1, 1])
    assert math.isnan(sk.metrics()["auc"])
    sk.fold([1, 0], [np.nan, np.nan], [0, 0])
    m = sk.metrics()
    assert m["count"] == 4
    assert m["scored_count"] == 2
    assert math.isnan(m["auc"])


def test_multiclass_confusion_macro_and_confidence_ece() -> None:
    sk = PerformanceSketch("multiclass", n_classes=3, n_score_bins=10)
    predicted = np.array([0, 1, 2, 2, 1, 0])
    labels = np.array([0, 1, 1, 2, 1, 2])
    confidence = np.array([0.95, 0.95, 0.95, 0.95, 0.95, 0.95])
    sk.fold(predicted, confidence, labels)
    m = sk.metrics()
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class (tp, predicted, true): 0 -> (1, 2, 1); 1 -> (2, 2, 3); 2 -> (1, 2, 2)
    assert m["precision"] == pytest.approx((1 / 2 + 2 / 2 + 1 / 2) / 3)
    assert m["recall"] == pytest.approx((1 / 1 + 2 / 3 + 1 / 2) / 3)
    assert m["f1"] == pytest.approx((2 / 3 + 4 / 5 + 2 / 4) / 3)
    assert m["ece"] == pytest.approx(abs(0.95 - 4 / 6))
    assert math.isnan(m["auc"])
    assert math.isnan(m["brier"])


def test_regression_mae_rmse() -> None:
    sk = PerformanceSketch("regression")
    sk.fold([1.0, 2.0, 5.0], None, [2.0, 2.0, 1.0])
    m = sk.metrics()
    assert m["mae"] == pytest.approx(5 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(17 / 3))
    assert m["mean_error"] == pytest.approx(1.0)
    assert set(m) == {"count", "mae", "rmse", "mean_error"}


def test_empty_sketch_metrics_are_nan() -> None:
    m = PerformanceSketch("binary").metrics()
    assert m["count"] == 0
    assert all(math.isnan(v) for k, v in m.items() if k not in ("count", "scored_count"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"task": "binary", "n_classes": 3}, "binary task has n_classes=2"),
        ({"task": "multiclass", "n_classes": 1}, "n_classes must be an int >= 2"),
        ({"n_score_bins": 0}, "n_score_bins must be an int >= 1"),
    ],
)
def test_constructor_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PerformanceSketch(**kwargs)  # type: ignore[arg-type]


def test_fold_validates_inputs() -> None:
    sk = PerformanceSketch("binary")
    with pytest.raises(ValueError, match="class indices"):
        sk.fold([2], [0.5], [1])
    with pytest.raises(ValueError, match="class indices"):
        sk.fold([1], [0.5], [np.nan])
    with pytest.raises(ValueError, match=r"scores must lie in \[0, 1\]"):
        sk.fold([1], [1.5], [1])
    with pytest.raises(ValueError, match="equal length"):
        sk.fold([1, 0], [0.5, 0.5], [1])
    assert sk.count == 0


def test_merge_refuses_other_shapes() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        PerformanceSketch("binary").merge(PerformanceSketch("binary", n_score_bins=10))


def _random_batch(rng: np.random.Generator, n: int, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if task == "regression":
        return rng.normal(size=n), np.full(n, np.nan), rng.normal(size=n)
    k = 2 if task == "binary" else 4
    scores = rng.random(n)
    scores[rng.random(n) < 0.1] = np.nan
    return rng.integers(0, k, n), scores, rng.integers(0, k, n)


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(["binary", "multiclass", "regression"]),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 300), min_size=1, max_size=4),
)
def test_merge_of_parts_equals_the_whole(task: Task, seed: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    predicted, scores, labels = _random_batch(rng, 300, task)
    n_classes = 4 if task == "multiclass" else 2
    whole = PerformanceSketch(task, n_classes)
    whole.fold(predicted, scores, labels)
    whole.fold_predictions(predicted, scores)
    merged = PerformanceSketch(task, n_classes)
    edges = [0, *sorted(cuts), 300]
    for lo, hi in itertools.pairwise(edges):
        part = PerformanceSketch(task, n_classes)
        part.fold(predicted[lo:hi], scores[lo:hi], labels[lo:hi])
        part.fold_predictions(predicted[lo:hi], scores[lo:hi])
        merged += part
    assert_same_state(merged, whole)
    for key, value in whole.metrics().items():
        assert merged.metrics()[key] == pytest.approx(value, nan_ok=True), key


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_merge_is_associative_and_commutative(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(3):
        sk = PerformanceSketch("binary")
        sk.fold(*_random_batch(rng, int(rng.integers(0, 50)), "binary"))
        parts.append(sk)

    def combine(*sketches: PerformanceSketch) -> PerformanceSketch:
        out = PerformanceSketch("binary")
        for sk in sketches:
            out += sk
        return out

    a, b, c = parts
    assert_same_state(combine(combine(a, b), c), combine(a, combine(b, c)))
    assert_same_state(combine(a, b), combine(b, a))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_to_dict_round_trips_through_json(task: Task) -> None:
    rng = np.random.default_rng(3)
    n_classes = 4 if task == "multiclass" else 2
    sk = PerformanceSketch(task, n_classes)
    batch = _random_batch(rng, 100, task)
    sk.fold(*batch)
    sk.fold_predictions(batch[0], batch[1])
    back = PerformanceSketch.from_dict(orjson.loads(orjson.dumps(sk.to_dict())))
    assert back.to_dict() == sk.to_dict()
    assert back.metrics() == pytest.approx(sk.metrics(), nan_ok=True)


def test_from_dict_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match=r"not a stream-monitor\.performance/v1"):
        PerformanceSketch.from_dict({"format": "something-else"})
    data = PerformanceSketch("binary").to_dict()
    data["confusion"] = [[1, 2, 3]]
    with pytest.raises(ValueError, match="malformed"):
        PerformanceSketch.from_dict(data)


def test_fold_does_not_mutate_inputs() -> None:
    predicted, scores, labels = np.array([1, 0]), np.array([0.7, np.nan]), np.array([1, 1])
    copies = [a.copy() for a in (predicted, scores, labels)]
    sk = PerformanceSketch("binary")
    sk.fold(predicted, scores, labels)
    sk.fold_predictions(predicted, scores)
    for original, copy in zip((predicted, scores, labels), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


# ------------------------------------------------------------------------------------------ CBPE estimate
def test_expected_performance_by_hand() -> None:
    sk = PerformanceSketch("binary")
    sk.fold_predictions([1, 0, 1, 1], [0.9, 0.2, 0.6, np.nan])
    e = sk.expected_performance()
    # tp = 0.9 + 0.6, fp = 0.1 + 0.4, fn = 0.2, tn = 0.8
    assert e["estimated_count"] == 3
    assert e["expected_accuracy"] == pytest.approx((1.5 + 0.8) / 3)
    assert e["expected_precision"] == pytest.approx(1.5 / 2.0)
    assert e["expected_recall"] == pytest.approx(1.5 / 1.7)
    assert e["expected_f1"] == pytest.approx(3.0 / (3.0 + 0.5 + 0.2))
    assert sk.predicted_counts().tolist() == [1, 3]
    assert sk.prediction_count == 4
    assert sk.count == 0
    assert expected_performance([1, 0, 1, 1], [0.9, 0.2, 0.6, np.nan]) == pytest.approx(e)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("a", "b"), [(2.0, 2.0), (0.7, 0.7), (2.0, 5.0)])
def test_cbpe_on_a_calibrated_model_tracks_realised_performance(seed: int, a: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    scores = rng.beta(a, b, n)
    labels = (rng.random(n) < scores).astype(int)  # calibrated by construction
    predicted = (scores >= 0.5).astype(int)
    sk = PerformanceSketch("binary")
    sk.fold_predictions(predicted, scores)
    sk.fold(predicted, scores, labels)
    realised, estimate = sk.metrics(), sk.expected_performance()
    assert abs(estimate["expected_accuracy"] - realised["accuracy"]) < 0.02
    assert abs(estimate["expected_f1"] - realised["f1"]) < 0.02
    assert abs(estimate["expected_precision"] - realised["precision"]) < 0.02
    assert abs(estimate["expected_recall"] - realised["recall"]) < 0.02
    assert realised["ece"] < 0.03


def test_cbpe_on_a_miscalibrated_model_is_off() -> None:
    """The estimate assumes calibration: overconfident scores overstate accuracy (guards the test above)."""
    rng = np.random.default_rng(9)
    true_p = rng.beta(2.0, 2.0, 20_000)
    labels = (rng.random(true_p.size) < true_p).astype(int)
    scores = np.clip(0.5 + 2.0 * (true_p - 0.5), 0.0, 1.0)  # overconfident
    predicted = (scores >= 0.5).astype(int)
    sk = PerformanceSketch("binary")
    sk.fold_predictions(predicted, scores)
    sk.fold(predicted, scores, labels)
    assert sk.expected_performance()["expected_accuracy"] - sk.metrics()["accuracy"] > 0.05
