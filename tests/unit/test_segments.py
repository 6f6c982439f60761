"""Segment codes waiting for their predictions: bounded by count and event time, snapshot-safe."""

from __future__ import annotations

import numpy as np
import pytest

from stream_monitor.pipeline.segments import SegmentLookup


def _keys(lo: int, hi: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.arange(lo, hi, dtype=np.uint64)


def test_pending_entries_are_bounded_by_count_and_by_age() -> None:
    lookup = SegmentLookup([5], max_pending=1000, ttl_seconds=100.0)
    for b in range(10):
        lookup.add(_keys(b * 400, (b + 1) * 400), np.full(400, float(b)), np.full((400, 1), b % 5))
    assert len(lookup) <= 1000 and lookup.evicted == 4000 - len(lookup)
    lookup.add(_keys(10_000, 10_010), np.full(10, 500.0), np.zeros((10, 1), dtype=np.int64))
    assert len(lookup) == 10  # everything older than 500 - 100 is gone
    assert lookup.take(_keys(0, 3)).tolist() == [-1, -1, -1] and lookup.missing == 3


def test_take_removes_and_packs_several_features() -> None:
    lookup = SegmentLookup([3, 4, 2], max_pending=100, ttl_seconds=60.0)
    lookup.add(_keys(1, 3), np.array([0.0, 1.0]), np.array([[2, 3, 1], [0, 1, 0]]))
    combined = lookup.take(_keys(1, 3))
    assert [lookup.unpack(combined, i).tolist() for i in range(3)] == [[2, 0], [3, 1], [1, 0]]
    assert lookup.take(_keys(1, 2)).tolist() == [-1]  # taken once


def test_snapshot_restore() -> None:
    lookup = SegmentLookup([4], max_pending=100, ttl_seconds=60.0)
    lookup.add(_keys(1, 5), np.arange(4.0), np.array([[0], [1], [2], [3]]))
    twin = SegmentLookup([4], max_pending=100, ttl_seconds=60.0)
    twin.restore(lookup.snapshot())
    assert twin.take(_keys(1, 5)).tolist() == lookup.take(_keys(1, 5)).tolist() == [0, 1, 2, 3]


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="radices"):
        SegmentLookup([], 10, 1.0)
