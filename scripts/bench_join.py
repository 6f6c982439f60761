"""Benchmark the prediction/label join, the performance fold and the River adapters; print ONE JSON line.

Workload: 1M predictions over 5000 s of event time; labels delayed by Exp(300 s), 10 % never labelled, 5 %
delivered up to 60 s before their prediction; 1 % of predictions duplicated. Events arrive in micro-batches of
10,000 in arrival order. Per batch: ``add_predictions`` and ``fold_predictions`` (the CBPE sums),
``add_labels``, every joined pair folded into the ``PerformanceSketch`` of its prediction's 300 s window, then
``expire``. A second pass also feeds the error bits of the joined pairs, in prediction-time order, to a DDM
adapter. Rates are per CPU second of this process (``time.process_time``) and per wall second.

Also: bytes of state per outstanding prediction with 1M outstanding (tracemalloc), the cost per update of
each River adapter, per ``update`` call and through ``update_many``, next to River's own, and the cost per
error bit of the default error stream (the CUSUM bank) fed in batches of 1,000.

Usage: ``python scripts/bench_join.py [--predictions N] [--batch B] [--seed S]``
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections import defaultdict

import numpy as np
import orjson

from stream_monitor.detectors.error_bits import make_error_detector
from stream_monitor.detectors.error_cusum import ErrorRateCusum
from stream_monitor.detectors.river_registry import DETECTORS
from stream_monitor.pipeline.join_results import JoinedBatch
from stream_monitor.pipeline.joiner import PredictionLabelJoiner
from stream_monitor.stats.performance import PerformanceSketch

WINDOW = 300.0


PredictionBatch = tuple[list[str], np.ndarray, np.ndarray, np.ndarray]
LabelBatch = tuple[list[str], np.ndarray, np.ndarray]


def make_batches(n: int, batch: int, seed: int) -> list[tuple[PredictionBatch, LabelBatch]]:
    """The workload as micro-batches of (predictions, labels), ids as Python str as a decoder hands them."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"evt-{i:012d}" for i in range(n)])
    pred_ts = np.sort(rng.uniform(0.0, n / 200.0, n))
    scores = rng.beta(2.0, 2.0, n)
    predicted = (scores >= 0.5).astype(np.float64)
    labels = (rng.random(n) < scores).astype(np.float64)
    label_ts = pred_ts + rng.exponential(300.0, n)
    labelled = np.flatnonzero(rng.random(n) >= 0.10)
    early = rng.random(n) < 0.05
    label_arrival = np.where(early, pred_ts - rng.uniform(0.0, 60.0, n), label_ts)
    dup = np.flatnonzero(rng.random(n) < 0.01)
    is_label = np.concatenate([np.zeros(n + dup.size, bool), np.ones(labelled.size, bool)])
    index = np.concatenate([np.arange(n), dup, labelled])
    order = np.argsort(np.concatenate([pred_ts, pred_ts[dup] + 1.0, label_arrival[labelled]]), kind="stable")
    is_label, index = is_label[order], index[order]
    out = []
    for lo in range(0, index.size, batch):
        k, i = is_label[lo : lo + batch], index[lo : lo + batch]
        p, q = i[~k], i[k]
        out.append(
            (
                (ids[p].tolist(), pred_ts[p], predicted[p], scores[p]),
                (ids[q].tolist(), label_ts[q], labels[q]),
            )
        )
    return out


def fold_by_window(windows: dict[int, PerformanceSketch], batch: JoinedBatch) -> None:
    if not len(batch):
        return
    w = np.floor(batch.pred_ts / WINDOW).astype(np.int64)
    for key in np.unique(w).tolist():
        m = w == key
        windows[key].fold(batch.predicted[m], batch.score[m], batch.label[m])


def run_join(work: list[tuple[PredictionBatch, LabelBatch]], with_detector: bool) -> dict[str, float]:
    joiner = PredictionLabelJoiner(ttl=1800.0)
    windows: dict[int, PerformanceSketch] = defaultdict(PerformanceSketch)
    detector = make_error_detector("ddm", warm_start=500, warning_threshold=3.0, drift_threshold=4.0)
    events = joined = 0
    watermark = -np.inf
    wall, cpu = time.perf_counter(), time.process_time()
    for (pid, pts, ppred, pscore), (lid, lts, lab) in work:
        events += len(pid) + len(lid)
        got = [joiner.add_predictions(pid, pts, ppred, pscore)]
        new = got[0].accepted  # duplicates are not predictions of the window
        w = np.floor(pts[new] / WINDOW).astype(np.int64)
        for key in np.unique(w).tolist():
            m = w == key
            windows[key].fold_predictions(ppred[new][m], pscore[new][m])
        got.append(joiner.add_labels(lid, lts, lab))
        for batch in got:
            fold_by_window(windows, batch)
            joined += len(batch)
            if with_detector and len(batch):
                order = np.argsort(batch.pred_ts, kind="stable")
                detector.update_many((batch.predicted != batch.label)[order])
        if pts.size:
            watermark = max(watermark, float(pts.max()))
        joiner.expire(watermark)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    s = joiner.stats()
    return {
        "events": events,
        "joined": joined,
        "cpu_s": cpu,
        "wall_s": wall,
        "events_per_cpu_s": events / cpu,
        "events_per_wall_s": events / wall,
        "joined_per_cpu_s": joined / cpu,
        "coverage": s.coverage,
        "lag_p50_s": s.lag_p50,
        "lag_p95_s": s.lag_p95,
        "evicted_ttl": s.evicted_ttl,
        "duplicate_predictions": s.duplicate_predictions,
        "windows": len(windows),
    }


def bytes_per_outstanding(n: int) -> dict[str, float]:
    ids = [f"evt-{i:012d}" for i in range(n)]
    ts = np.arange(n, dtype=np.float64)
    ones, half = np.ones(n), np.full(n, 0.5)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        joiner = PredictionLabelJoiner(ttl=1e9)
        for lo in range(0, n, 10_000):
            sl = slice(lo, lo + 10_000)
            joiner.add_predictions(ids[sl], ts[sl], ones[sl], half[sl])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert joiner.stats().outstanding == n
    return {
        "outstanding": n,
        "bytes_per_outstanding": (current - base) / n,
        "peak_bytes_per_outstanding": (peak - base) / n,
    }


def river_costs(n: int, seed: int) -> dict[str, dict[str, float]]:
    bits = (np.random.default_rng(seed).random(n) < 0.1).astype(np.float64).tolist()
    out = {}
    for name, cls in DETECTORS.items():
        wrapped = make_error_detector(name)
        t = time.process_time()
        for b in bits:
            wrapped.update(b)
        adapter = (time.process_time() - t) / n * 1e6
        raw = cls()._build()  # River's own detector with the same parameters, for comparison
        feed = [1.0 - b for b in bits] if cls.fires_on_decrease else bits
        t = time.process_time()
        for b in feed:
            raw.update(b)
        river = (time.process_time() - t) / n * 1e6
        many = make_error_detector(name)
        t = time.process_time()
        many.update_many(np.asarray(bits))
        batched = (time.process_time() - t) / n * 1e6
        out[name] = {
            "update_us": round(adapter, 3),
            "update_many_us": round(batched, 3),
            "river_us": round(river, 3),
        }
    return out


def cusum_cost(n: int, seed: int, batch: int = 1000) -> dict[str, float]:
    """The default error stream (the CUSUM bank, budgeted as for 100 labels/s) per bit, fed in batches."""
    bits = (np.random.default_rng(seed).random(n) < 0.1).astype(np.float64)
    t = time.process_time()
    bank = ErrorRateCusum(0.1, 1e9, 1e10)
    design = time.process_time() - t
    t = time.process_time()
    for i in range(0, n, batch):
        bank.update_many(bits[i : i + batch])
    per_bit = (time.process_time() - t) / n * 1e6
    return {"update_many_us": round(per_bit, 3), "batch": batch, "design_ms": round(design * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = make_batches(args.predictions, args.batch, args.seed)
    join = run_join(work, with_detector=False)
    with_ddm = run_join(work, with_detector=True)
    result = {
        "bench": "join",
        "predictions": args.predictions,
        "batch": args.batch,
        "join_fold": {k: round(v, 3) if isinstance(v, float) else v for k, v in join.items()},
        "join_fold_ddm_events_per_cpu_s": round(with_ddm["events_per_cpu_s"]),
        "memory": bytes_per_outstanding(args.predictions),
        "river_update": river_costs(200_000, args.seed),
        "error_cusum": cusum_cost(1_000_000, args.seed),
        "targets": {"joined_events_per_s": 200_000, "bytes_per_outstanding": 300},
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
