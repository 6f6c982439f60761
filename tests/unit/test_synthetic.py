"""Tests of the seeded synthetic stream generator (stream_monitor/devtools/synthetic*.py)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from stream_monitor.devtools.synthetic import SyntheticStream, generate, iter_feature_batches
from stream_monitor.devtools.synthetic_jsonl import encode, write_jsonl
from stream_monitor.devtools.synthetic_spec import DRIFT_KINDS, Drift, StreamSpec, parse_drift
from stream_monitor.devtools.synthetic_world import stream_params

REPO = Path(__file__).resolve().parents[2]
T0 = StreamSpec().start_ts
# 20k events at 100/s span ~200 s; drifts start in the middle.
N = 20_000
MID = T0 + 100.0


def _base(**kw: object) -> StreamSpec:
    return StreamSpec(**{"seed": 11, "label_drop_rate": 0.0, **kw})  # type: ignore[arg-type]


def _split(stream: SyntheticStream, start: float = MID) -> tuple[np.ndarray, np.ndarray]:
    ts = stream.timestamps()
    return ts < start, ts >= start


def _values(stream: SyntheticStream, name: str) -> list[object]:
    return [e["features"].get(name, "<missing>") for e in stream.features]


# --- shape and determinism -------------------------------------------------------------------------------


def test_event_shapes_follow_design() -> None:
    spec = StreamSpec(seed=3)
    s = generate(spec, 3000)
    names = {"num_00", "num_01", "num_02", "num_03", "num_04", "cat_00", "cat_01"}
    for e in s.features:
        assert list(e) == ["event_id", "model_id", "ts", "features"]
        assert e["model_id"] == "churn-v3"
        assert type(e["ts"]) is float
        assert set(e["features"]) == names
        assert all(type(e["features"][n]) is float for n in names if n.startswith("num"))
        assert all(type(e["features"][n]) is str for n in names if n.startswith("cat"))
    for e in s.predictions:
        assert list(e) == ["event_id", "model_id", "ts", "prediction", "score"]
        assert e["prediction"] in (0, 1)
        assert type(e["prediction"]) is int
        assert 0.0 <= e["score"] <= 1.0
        assert e["prediction"] == int(e["score"] >= 0.5)
    for e in s.labels:
        assert list(e) == ["event_id", "model_id", "ts", "label"]
        assert e["label"] in (0, 1)
        assert type(e["label"]) is int
    ids = [e["event_id"] for e in s.features]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"e-\d{9}", i) for i in ids)
    assert ids[:2] == ["e-000000000", "e-000000001"]
    for events in (s.features, s.predictions, s.labels):
        ts = [e["ts"] for e in events]
        assert ts == sorted(ts)
    assert s.features[0]["ts"] == spec.start_ts
    # Predictions join features, labels join predictions, both later in event time.
    feature_ts = {e["event_id"]: e["ts"] for e in s.features}
    pred_ts = {e["event_id"]: e["ts"] for e in s.predictions}
    assert set(pred_ts) == set(feature_ts)
    assert all(pred_ts[i] >= feature_ts[i] for i in pred_ts)
    assert all(e["ts"] >= pred_ts[e["event_id"]] for e in s.labels)
    assert len({e["event_id"] for e in s.labels}) == len(s.labels)


def test_rate_label_delay_and_drop() -> None:
    spec = StreamSpec(seed=4, events_per_second=250.0, label_delay_mean_s=30.0, label_drop_rate=0.2)
    s = generate(spec, N)
    span = s.features[-1]["ts"] - s.features[0]["ts"]
    assert span == pytest.approx(N / 250.0, rel=0.05)
    assert len(s.labels) / N == pytest.approx(0.8, abs=0.02)
    pred_ts = {e["event_id"]: e["ts"] for e in s.predictions}
    delays = np.array([e["ts"] - pred_ts[e["event_id"]] for e in s.labels])
    assert delays.mean() == pytest.approx(30.0, rel=0.05)


def test_same_seed_same_events_other_seed_other_events() -> None:
    drifts = [Drift("mean_shift", "num_01", MID, 1.0), Drift("null_spike", "cat_00", MID, 0.5)]
    a = generate(StreamSpec(seed=5), 5000, drifts)
    b = generate(StreamSpec(seed=5), 5000, drifts)
    c = generate(StreamSpec(seed=6), 5000, drifts)
    assert (a.features, a.predictions, a.labels) == (b.features, b.predictions, b.labels)
    assert a.features != c.features
    assert a.predictions != c.predictions


def test_shorter_stream_is_a_prefix() -> None:
    long = generate(StreamSpec(seed=8), 20_000)
    short = generate(StreamSpec(seed=8), 9_001)
    assert short.features == long.features[:9_001]
    by_id = {e["event_id"]: e for e in long.predictions}
    assert all(by_id[e["event_id"]] == e for e in short.predictions)


def test_world_depends_on_model_not_on_seed() -> None:
    p1 = stream_params(StreamSpec(seed=1))
    p2 = stream_params(StreamSpec(seed=2, n_numeric=12))
    other = stream_params(StreamSpec(model_id="fraud-v1"))
    np.testing.assert_array_equal(p1.means, p2.means[:5])
    np.testing.assert_array_equal(p1.sds, p2.sds[:5])
    assert p1.categories == p2.categories
    assert not np.array_equal(p1.means, other.means)
    assert len(set(p2.means.tolist())) == 12
    assert len(set(p2.sds.tolist())) == 12
    assert p2.means.min() >= -2
    assert p2.means.max() <= 50
    assert p2.sds.min() >= 0.5
    assert p2.sds.max() <= 20
    for probs in p1.category_probs:
        assert 4 <= len(probs) <= 8
        assert probs.sum() == pytest.approx(1.0)
        assert np.all(np.diff(probs) <= 0)
        assert probs[0] > 1.5 * probs[-1]


def test_marginals_and_correlated_pairs() -> None:
    spec = StreamSpec(seed=9, n_numeric=6, correlated_pairs=2)
    p = stream_params(spec)
    x = generate(spec, N).columns()
    for j, name in enumerate(p.numeric_names):
        assert x[name].mean() == pytest.approx(p.means[j], abs=0.05 * p.sds[j])
        assert x[name].std() == pytest.approx(p.sds[j], rel=0.05)
    assert np.corrcoef(x["num_00"], x["num_01"])[0, 1] == pytest.approx(0.8, abs=0.02)
    assert np.corrcoef(x["num_02"], x["num_03"])[0, 1] == pytest.approx(0.8, abs=0.02)
    assert abs(np.corrcoef(x["num_04"], x["num_05"])[0, 1]) < 0.05


# --- iter_feature_batches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 8192, 8193, 30_000])
def test_iter_feature_batches_equals_generate(batch_size: int) -> None:
    n = 17_000 if batch_size > 1 else 2_000
    drifts = [
        Drift("new_category", "cat_01", T0 + 50.0, 0.3),
        Drift("missing_field", "num_02", T0 + 60.0, 0.5),
    ]
    spec = StreamSpec(seed=12, null_rate=0.05)
    batches = list(iter_feature_batches(spec, n, batch_size, drifts))
    assert all(len(b) == batch_size for b in batches[:-1])
    assert 0 < len(batches[-1]) <= batch_size
    assert [e for b in batches for e in b] == generate(spec, n, drifts).features


def test_iter_feature_batches_validates() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        iter_feature_batches(StreamSpec(), 10, 0)
    with pytest.raises(ValueError, match="unknown feature"):
        iter_feature_batches(StreamSpec(), 10, 5, [Drift("mean_shift", "age")])
    assert list(iter_feature_batches(StreamSpec(), 0, 5)) == []


# --- drifts -----------------------------------------------------------------------------------------------


def test_mean_shift_moves_only_its_feature_after_start() -> None:
    spec = _base()
    sd = stream_params(spec).sds[0]
    clean = generate(spec, N)
    drifted = generate(spec, N, [Drift("mean_shift", "num_00", MID, 0.5)])
    before, after = _split(drifted)
    x0, x1 = clean.columns()["num_00"], drifted.columns()["num_00"]
    np.testing.assert_array_equal(x1[before], x0[before])
    np.testing.assert_allclose(x1[after] - x0[after], 0.5 * sd, atol=1e-3)  # rounding to 3 decimals
    # In sd units the sample mean moves by ~0.5 after the start and not before.
    assert (x1[after].mean() - x1[before].mean()) / sd == pytest.approx(0.5, abs=0.05)
    for name in ("num_01", "num_02", "num_03", "num_04"):
        np.testing.assert_array_equal(drifted.columns()[name], clean.columns()[name])
    assert _values(drifted, "cat_00") == _values(clean, "cat_00")


def test_ramp_is_linear() -> None:
    spec = _base()
    sd = stream_params(spec).sds[2]
    clean = generate(spec, N)
    drifted = generate(spec, N, [Drift("mean_shift", "num_02", T0 + 50.0, 2.0, ramp_seconds=100.0)])
    ts = drifted.timestamps()
    delta = (drifted.columns()["num_02"] - clean.columns()["num_02"]) / sd
    expected = 2.0 * np.clip((ts - (T0 + 50.0)) / 100.0, 0.0, 1.0)
    np.testing.assert_allclose(delta, expected, atol=1e-3 / sd + 1e-9)


def test_variance_scale_keeps_the_mean() -> None:
    spec = _base()
    p = stream_params(spec)
    s = generate(spec, N, [Drift("variance_scale", "num_04", MID, 2.0)])
    before, after = _split(s)
    x = s.columns()["num_04"]
    assert x[after].var() / x[before].var() == pytest.approx(2.0, rel=0.08)
    assert x[after].mean() == pytest.approx(p.means[4], abs=0.05 * p.sds[4])


def test_correlation_flip_flips_sign_and_keeps_marginals() -> None:
    spec = _base()
    clean = generate(spec, N)
    s = generate(spec, N, [Drift("correlation_flip", "num_00", MID)])
    before, after = _split(s)
    x, y = s.columns()["num_00"], s.columns()["num_01"]
    assert np.corrcoef(x[before], y[before])[0, 1] == pytest.approx(0.8, abs=0.03)
    assert np.corrcoef(x[after], y[after])[0, 1] == pytest.approx(-0.8, abs=0.03)
    np.testing.assert_array_equal(x, clean.columns()["num_00"])  # the first member is untouched
    y0 = clean.columns()["num_01"]
    assert y[after].mean() == pytest.approx(y0[after].mean(), abs=0.05 * y0.std())
    assert y[after].std() == pytest.approx(y0[after].std(), rel=0.05)
    with pytest.raises(ValueError, match="correlated pair"):
        generate(spec, 10, [Drift("correlation_flip", "num_03", MID)])


def test_new_category_share() -> None:
    spec = _base()
    s = generate(spec, N, [Drift("new_category", "cat_00", MID, 0.3, category="platinum")])
    before, after = _split(s)
    is_new = np.array([v == "platinum" for v in _values(s, "cat_00")])
    assert not is_new[before].any()
    assert is_new[after].mean() == pytest.approx(0.3, abs=0.02)
    assert "platinum" not in _values(s, "cat_01")


def test_null_spike_reaches_the_share() -> None:
    spec = _base(null_rate=0.1)
    s = generate(spec, N, [Drift("null_spike", "num_03", MID, 0.4)])
    before, after = _split(s)
    null = np.isnan(s.columns()["num_03"])
    assert null[before].mean() == pytest.approx(0.1, abs=0.015)
    assert null[after].mean() == pytest.approx(0.4, abs=0.02)
    assert np.isnan(s.columns()["num_02"])[after].mean() == pytest.approx(0.1, abs=0.015)
    assert all(v is None for v, n in zip(_values(s, "num_03"), null, strict=True) if n)


def test_type_change_rescale_and_missing_field() -> None:
    spec = _base()
    clean = generate(spec, N)
    s = generate(
        spec,
        N,
        [
            Drift("type_change", "num_01", MID, 0.25),
            Drift("type_change", "cat_01", MID, 1.0),
            Drift("rescale", "num_04", MID, 1000.0),
            Drift("missing_field", "num_02", MID, 0.5),
        ],
    )
    before, after = _split(s)
    num_01 = _values(s, "num_01")
    as_str = np.array([isinstance(v, str) for v in num_01])
    assert not as_str[before].any()
    assert as_str[after].mean() == pytest.approx(0.25, abs=0.02)
    assert [float(v) for v in num_01] == pytest.approx(_values(clean, "num_01"))  # type: ignore[arg-type]
    cat_01 = _values(s, "cat_01")
    assert all(type(v) is int for v, a in zip(cat_01, after, strict=True) if a)
    assert all(type(v) is str for v, b in zip(cat_01, before, strict=True) if b)
    x, x0 = s.columns()["num_04"], clean.columns()["num_04"]
    np.testing.assert_allclose(x[after], 1000.0 * x0[after], rtol=1e-4, atol=1.0)
    np.testing.assert_array_equal(x[before], x0[before])
    missing = np.array([v == "<missing>" for v in _values(s, "num_02")])
    assert not missing[before].any()
    assert missing[after].mean() == pytest.approx(0.5, abs=0.02)
    assert np.isnan(s.columns()["num_02"][missing]).all()


def _joined(s: SyntheticStream) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per labelled event: feature ts, score, prediction, label."""
    ts = {e["event_id"]: e["ts"] for e in s.features}
    pred = {e["event_id"]: e for e in s.predictions}
    rows = [
        (ts[e["event_id"]], pred[e["event_id"]]["score"], pred[e["event_id"]]["prediction"], e["label"])
        for e in s.labels
    ]
    a = np.array(rows)
    return a[:, 0], a[:, 1], a[:, 2], a[:, 3]


def test_scores_are_calibrated() -> None:
    s = generate(_base(), 40_000)
    _, score, _, label = _joined(s)
    edges = np.quantile(score, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, 9)
    for b in range(10):
        in_bin = bins == b
        assert label[in_bin].mean() == pytest.approx(score[in_bin].mean(), abs=0.035), b
    assert 0.2 < label.mean() < 0.5


def test_concept_switch_drops_accuracy_with_unchanged_inputs() -> None:
    spec = _base()
    clean = generate(spec, N)
    s = generate(spec, N, [Drift("concept_switch", start_ts=MID)])
    assert s.features == clean.features
    assert s.predictions == clean.predictions
    ts, _, pred, label = _joined(s)
    correct = pred == label
    acc_before, acc_after = correct[ts < MID].mean(), correct[ts >= MID].mean()
    assert acc_before > 0.75
    assert acc_after < acc_before - 0.2


def test_score_shift_moves_the_logit_not_the_labels() -> None:
    spec = _base()
    clean = generate(spec, N)
    s = generate(spec, N, [Drift("score_shift", start_ts=MID, magnitude=1.0)])
    assert s.features == clean.features
    assert s.labels == clean.labels

    def logit(stream: SyntheticStream) -> np.ndarray:
        p = np.array([e["score"] for e in stream.predictions])
        out: np.ndarray = np.log(p / (1 - p))
        return out

    ts = np.array([e["ts"] for e in s.predictions])
    kept = np.array([0.01 < e["score"] < 0.99 for e in clean.predictions])  # away from rounding to 0 or 1
    delta = logit(s) - logit(clean)
    assert np.abs(delta[(ts < MID) & kept]).max() < 0.01
    assert np.abs(delta[(ts >= MID + 1) & kept] - 1.0).max() < 0.02


def test_data_quality_drifts_hurt_the_model() -> None:
    spec = _base()
    s = generate(spec, N, [Drift("rescale", "num_04", MID, 1000.0)])
    ts, _, pred, label = _joined(s)
    correct = pred == label
    assert correct[ts >= MID].mean() < correct[ts < MID].mean() - 0.1


# --- validation, parsing, I/O -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "drift_everything", "feature": "num_00"}, "unknown drift kind"),
        ({"kind": "mean_shift"}, "needs a feature"),
        ({"kind": "score_shift", "feature": "num_00"}, "applies to the model"),
        ({"kind": "null_spike", "feature": "num_00"}, r"share of events in \(0, 1\]"),
        ({"kind": "missing_field", "feature": "num_00", "magnitude": 1.5}, r"\(0, 1\]"),
        ({"kind": "variance_scale", "feature": "num_00", "magnitude": 0.0}, "variance multiplier"),
        ({"kind": "rescale", "feature": "num_00"}, "non-zero multiplier"),
        ({"kind": "mean_shift", "feature": "num_00", "ramp_seconds": -1.0}, "ramp_seconds"),
        ({"kind": "mean_shift", "feature": "num_00", "magnitude": math.nan}, "finite"),
    ],
)
def test_drift_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Drift(**kwargs)  # type: ignore[arg-type]


def test_drift_feature_type_is_checked() -> None:
    with pytest.raises(ValueError, match="needs a numeric feature"):
        generate(StreamSpec(), 10, [Drift("mean_shift", "cat_00", MID, 1.0)])
    with pytest.raises(ValueError, match="needs a categorical feature"):
        generate(StreamSpec(), 10, [Drift("new_category", "num_00", MID, 0.2)])
    with pytest.raises(ValueError, match="already a category"):
        generate(StreamSpec(), 10, [Drift("new_category", "cat_00", MID, 0.2, category="a")])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_numeric": 0, "n_categorical": 0},
        {"events_per_second": 0.0},
        {"null_rate": 1.0},
        {"label_drop_rate": -0.1},
        {"seed": -1},
    ],
)
def test_spec_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is specific, the parameters vary
        StreamSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n_numeric", "n_categorical"), [(0, 2), (1, 0), (3, 0)])
def test_small_specs_work(n_numeric: int, n_categorical: int) -> None:
    spec = StreamSpec(n_numeric=n_numeric, n_categorical=n_categorical, seed=1)
    s = generate(spec, 500, [Drift("concept_switch", start_ts=T0 + 2.0)])
    assert len(s.features[0]["features"]) == n_numeric + n_categorical
    assert len(s.columns()) == n_numeric


def test_every_kind_runs() -> None:
    feature = {"score_shift": None, "concept_switch": None, "new_category": "cat_00"}
    magnitude = {"variance_scale": 2.0, "rescale": 100.0}
    drifts = [
        Drift(kind, feature.get(kind, "num_00"), MID, magnitude.get(kind, 0.5))  # type: ignore[arg-type]
        for kind in DRIFT_KINDS
    ]
    s = generate(StreamSpec(seed=2), 3000, drifts)
    assert len(s.features) == 3000


def test_parse_drift() -> None:
    d = parse_drift("new_category:cat_00:start=+600:magnitude=0.2:ramp=60:category=gold", T0)
    assert d == Drift("new_category", "cat_00", T0 + 600.0, 0.2, 60.0, "gold")
    assert parse_drift("score_shift:start=1763766500:magnitude=-1", T0) == Drift(
        "score_shift", None, 1763766500.0, -1.0
    )
    assert parse_drift("concept_switch:start=+10", T0) == Drift("concept_switch", None, T0 + 10.0)
    with pytest.raises(ValueError, match="unknown kind"):
        parse_drift("shift:num_00", T0)
    with pytest.raises(ValueError, match="key=value"):
        parse_drift("mean_shift:num_00:size=3", T0)
    with pytest.raises(ValueError, match="must be a number"):
        parse_drift("mean_shift:num_00:magnitude=big", T0)


def test_encode_and_write_jsonl(tmp_path: Path) -> None:
    s = generate(StreamSpec(seed=1, null_rate=0.1), 1000)
    paths = write_jsonl(s, tmp_path / "out")
    assert set(paths) == {"features", "predictions", "labels"}
    for name, events in (("features", s.features), ("predictions", s.predictions), ("labels", s.labels)):
        lines = paths[name].read_bytes().splitlines()
        assert lines == [encode(e) for e in events]
        assert [json.loads(line) for line in lines] == events  # plain JSON, nulls as null
    assert b"NaN" not in paths["features"].read_bytes()


def test_time_ordered_merges_everything() -> None:
    s = generate(StreamSpec(seed=1, label_delay_mean_s=5.0), 2000)
    merged = list(s.time_ordered())
    assert len(merged) == len(s.features) + len(s.predictions) + len(s.labels)
    ts = [e["ts"] for _, e in merged]
    assert ts == sorted(ts)
    assert [e for kind, e in merged if kind == "labels"] == s.labels


def test_cli_writes_files_and_summary(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "synth_stream.py"),
            "--out",
            str(tmp_path),
            "--events",
            "1500",
            "--seed",
            "4",
            "--numeric",
            "3",
            "--categorical",
            "1",
            "--rate",
            "50",
            "--drift",
            "mean_shift:num_00:start=+10:magnitude=0.5",
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    summary = json.loads(out.stdout)
    assert summary["counts"]["features"] == 1500
    assert summary["drifts"][0]["start_ts"] == T0 + 10.0
    spec = StreamSpec(n_numeric=3, n_categorical=1, events_per_second=50.0, seed=4)
    expected = generate(spec, 1500, [Drift("mean_shift", "num_00", T0 + 10.0, 0.5)])
    lines = (tmp_path / "features.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == expected.features


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_committed_examples_are_reproducible(tmp_path: Path) -> None:
    committed = REPO / "examples"
    if not (committed / "stream" / "features.jsonl").exists():
        pytest.skip("examples not generated")
    subprocess.run(
        ["bash", str(REPO / "scripts" / "make_examples.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHON": sys.executable},
    )
    for part in ("reference", "stream"):
        for name in ("features", "predictions", "labels"):
            fresh, kept = tmp_path / part / f"{name}.jsonl", committed / part / f"{name}.jsonl"
            assert fresh.read_bytes() == kept.read_bytes(), f"{kept} is stale: run scripts/make_examples.sh"
            assert kept.stat().st_size < 1_500_000
