"""Window sketches: merging per-partition partials gives exactly the sketch of the union."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.core.errors import SnapshotError
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.sketch_folding import fold_categorical_segments, fold_numeric_segments
from stream_monitor.stats.sketch_layout import CategoricalSignal, NumericSignal, SketchLayout
from stream_monitor.stats.sketches import WindowSketch

NUM = NumericProfile(
    count=100,
    nulls=0,
    edges=np.array([-1.0, 0.0, 1.0]),
    counts=np.array([16, 34, 34, 16]),
    mean=0.0,
    std=1.0,
    min=-3.0,
    max=3.0,
)
NUM2 = NumericProfile(
    count=100,
    nulls=0,
    edges=np.array([10.0]),
    counts=np.array([50, 50]),
    mean=10.0,
    std=2.0,
    min=5.0,
    max=15.0,
)
CAT = CategoricalProfile(count=100, nulls=0, categories=("a", "b"), counts=np.array([60, 40, 0]), distinct=2)
LAYOUT = SketchLayout(
    [NumericSignal("x", "feature", NUM), NumericSignal("y", "feature", NUM2)],
    [CategoricalSignal("c", "feature", CAT)],
    multivariate_width=2,
)

values = st.floats(min_value=-20, max_value=20, allow_nan=False) | st.just(float("nan"))
rows = st.lists(st.tuples(values, values, st.integers(-3, 2)), min_size=0, max_size=40)


def _fold(sketch: WindowSketch, block: list[tuple[float, float, int]], first_ts: float = 1.7e9) -> None:
    if not block:
        return
    x = np.array([[a, b] for a, b, _ in block])
    codes = np.where(np.isnan(x), 1, 0).astype(np.int8)
    sketch.fold_numeric(0, x, codes)
    slots = np.array([[c] for _, _, c in block], dtype=np.int32)
    new = [[(i, f"v{i % 3}") for i, (_, _, c) in enumerate(block) if c == 2]]
    sketch.fold_categorical(0, slots, new)
    sketch.count_events("features", np.arange(len(block), dtype=np.float64) + first_ts)


def _assert_same(a: WindowSketch, b: WindowSketch) -> None:
    for name in ("num_hist", "num_codes", "num_out", "cat_hist", "cat_codes", "events"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("num_sum", "num_sumsq"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a.num_min, b.num_min)
    np.testing.assert_array_equal(a.num_max, b.num_max)
    assert a.ts_min == b.ts_min and a.ts_max == b.ts_max


@settings(max_examples=60, deadline=None)
@given(rows, rows, rows)
def test_merge_of_parts_equals_the_whole_and_is_associative(p1: list, p2: list, p3: list) -> None:  # type: ignore[type-arg]
    whole = WindowSketch(LAYOUT)
    _fold(whole, p1 + p2 + p3)
    parts = []
    offset = 1.7e9
    for p in (p1, p2, p3):
        sk = WindowSketch(LAYOUT)
        _fold(sk, p, offset)
        offset += len(p)
        parts.append(sk)
    left = parts[0].copy().merge(parts[1]).merge(parts[2])
    right = parts[0].copy().merge(parts[1].copy().merge(parts[2]))
    _assert_same(left, whole)
    _assert_same(right, whole)


@settings(max_examples=40, deadline=None)
@given(rows, st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_segmented_fold_equals_folding_each_segment(block: list, cuts: list) -> None:  # type: ignore[type-arg]
    if not block:
        return
    starts = np.unique(np.clip(np.cumsum([0, *cuts])[:-1], 0, len(block) - 1)).astype(np.intp)
    bounds = [*starts.tolist(), len(block)]
    segmented = [WindowSketch(LAYOUT) for _ in starts]
    x = np.array([[a, b] for a, b, _ in block])
    codes = np.where(np.isnan(x), 1, 0).astype(np.int8)
    fold_numeric_segments(segmented, starts, 0, x, codes)
    slots = np.array([[c] for _, _, c in block], dtype=np.int32)
    fold_categorical_segments(
        segmented, starts, 0, slots, [[(i, "n") for i, (_, _, c) in enumerate(block) if c == 2]]
    )
    for k, sk in enumerate(segmented):
        one = WindowSketch(LAYOUT)
        lo, hi = bounds[k], bounds[k + 1]
        one.fold_numeric(0, x[lo:hi], codes[lo:hi])
        one.fold_categorical(0, slots[lo:hi], [[(i - lo, "n") for i in range(lo, hi) if block[i][2] == 2]])
        for name in ("num_hist", "num_codes", "cat_hist", "cat_codes", "num_out"):
            assert np.array_equal(getattr(sk, name), getattr(one, name)), name
        assert sk.new_values == one.new_values


def test_bins_follow_searchsorted_right_with_open_tails() -> None:
    sk = WindowSketch(LAYOUT)
    x = np.array([[-5.0, 0.0], [-1.0, 10.0], [0.5, 11.0], [1.0, 9.0], [99.0, 100.0]])
    sk.fold_numeric(0, x, np.zeros_like(x, dtype=np.int8))
    assert sk.numeric_counts(0).tolist() == [1, 1, 1, 2]  # -1 goes right of edge -1; 1.0 right of edge 1
    assert sk.numeric_counts(1).tolist() == [2, 3]
    assert sk.num_out[0].tolist() == [1, 1]  # below min -3, above max 3
    mean, std = sk.numeric_mean_std(0)
    assert mean == pytest.approx(x[:, 0].mean()) and std == pytest.approx(x[:, 0].std())


def test_snapshot_round_trip_and_layout_check() -> None:
    sk = WindowSketch(LAYOUT)
    _fold(sk, [(0.5, 12.0, 0), (float("nan"), 3.0, 2), (2.0, 9.0, -1)])
    sk.fold_pair_sums(np.ones((4, 2, 2)))
    again = WindowSketch.from_bytes(sk.to_bytes(), LAYOUT)
    assert again == sk
    other = SketchLayout([NumericSignal("x", "feature", NUM)], [])
    with pytest.raises(SnapshotError, match="different reference"):
        WindowSketch.from_bytes(sk.to_bytes(), other)
    with pytest.raises(ValueError, match="different layouts"):
        WindowSketch(other).merge(sk)


def test_size_does_not_grow_with_events() -> None:
    sk = WindowSketch(LAYOUT)
    size = len(sk.to_bytes())
    rng = np.random.default_rng(0)
    for i in range(50):
        block = [
            (float(a), float(b), int(c))
            for a, b, c in zip(
                rng.normal(size=500), rng.normal(10, 2, 500), rng.integers(0, 3, 500), strict=True
            )
        ]
        block = [(a, b, c) if c < 2 else (a, b, 2) for a, b, c in block]
        new = [[(j, f"new-{i}-{j}") for j in range(500)]]  # a flood of distinct unseen categories
        sk.fold_categorical(0, np.array([[c] for *_, c in block], dtype=np.int32), new)
        _fold(sk, block)
    assert len(sk.to_bytes()) < size + 4000  # bounded tallies, fixed arrays
    assert len(sk.new_values[0]) <= 16
