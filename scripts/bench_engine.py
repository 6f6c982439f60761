"""Benchmark of the detection engine: prints ONE JSON line of figures.

* engine events/s with decode excluded (decoded dicts in) and included (raw JSON bytes in), on a stream of
  20 numeric + 3 categorical features, fed in micro-batches;
* the do-it-yourself baseline in the same run: the same events, one by one, into a River ADWIN per numeric
  feature (which sees only mean shifts, where the engine tests whole distributions);
* peak RSS of the engine fed 1M and 10M events (separate child processes), to show memory does not grow with
  stream length.

Usage: python scripts/bench_engine.py [--events 1000000] [--long-events 10000000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson

from stream_monitor.config.loading import parse_config
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.devtools.synthetic import generate, iter_feature_batches
from stream_monitor.devtools.synthetic_spec import Drift, StreamSpec
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.reference_builder import ReferenceBuilder

N_NUMERIC, N_CATEGORICAL = 20, 3
RATE = 20_000.0  # events/s of event time: windows of 5000 events close every quarter second


def _engine() -> Engine:
    ref = generate(
        StreamSpec(
            n_numeric=N_NUMERIC,
            n_categorical=N_CATEGORICAL,
            seed=1,
            events_per_second=RATE,
            with_predictions=False,
            with_labels=False,
        ),
        50_000,
    )
    builder = ReferenceBuilder(seed=0)
    builder.add_features(ref.features)
    profile = builder.build()
    config = parse_config({"models": {"churn-v3": {"reference": "unused"}}})
    return Engine(config, profile.models, ManualClock(0.0))


def _live_spec() -> tuple[StreamSpec, list[Drift]]:
    spec = StreamSpec(
        n_numeric=N_NUMERIC,
        n_categorical=N_CATEGORICAL,
        seed=2,
        events_per_second=RATE,
        start_ts=1763766000.0 + 86400,
        with_predictions=False,
        with_labels=False,
    )
    drift = [Drift("mean_shift", "num_03", start_ts=spec.start_ts + 30.0, magnitude=0.5)]
    return spec, drift


def run_engine(n_events: int, batch: int, include_decode: bool, chunk: int = 100_000) -> dict[str, float]:
    """Engine time only. Events are generated a chunk at a time (bounded memory) and a first chunk warms the
    engine up untimed: generating dicts between engine calls evicts the engine's working set from the caches,
    which would measure the generator as much as the engine."""
    engine = _engine()
    spec, drifts = _live_spec()
    warm = list(itertools.islice(iter_feature_batches(spec, chunk, batch, drifts), chunk // batch))
    for events in warm:
        engine.process_events(Stream.FEATURES, events)
    engine = _engine()
    busy = steady_busy = 0.0
    alerts = steady_events = 0
    batches = iter_feature_batches(spec, n_events, batch, drifts)
    while True:
        block = list(itertools.islice(batches, max(chunk // batch, 1)))
        if not block:
            break
        raw = [[orjson.dumps(e) for e in events] for events in block] if include_decode else None
        for k, events in enumerate(block):
            testing = windows_tested(engine) > 0
            t0 = time.perf_counter()
            if raw is not None:
                result = engine.process(Stream.FEATURES, raw[k])
            else:
                result = engine.process_events(Stream.FEATURES, events)
            spent = time.perf_counter() - t0
            busy += spent
            if (
                testing
            ):  # windows close only once event time passes the allowed lateness (30 s of stream here)
                steady_busy += spent
                steady_events += len(events)
            alerts += len(result.alerts)
    t0 = time.perf_counter()
    alerts += len(engine.flush())
    busy += time.perf_counter() - t0
    return {
        "events_per_s": n_events / busy,
        # the part of the run where windows are being tested too, as they are forever after in a service
        "steady_events_per_s": steady_events / steady_busy if steady_busy else float("nan"),
        "seconds": busy,
        "alerts": alerts,
        "windows": windows_tested(engine),
    }


def windows_tested(engine: Engine) -> int:
    return sum(p.monitor.windows_tested for p in engine.pipelines.values())


def run_river(n_events: int, batch: int) -> dict[str, float]:
    from stream_monitor.detectors.river_registry import make_detector

    spec, drifts = _live_spec()
    names = [f"num_{i:02d}" for i in range(N_NUMERIC)]
    detectors = {n: make_detector("adwin") for n in names}
    busy = 0.0
    flagged = 0
    for events in iter_feature_batches(spec, n_events, batch, drifts):
        t0 = time.perf_counter()
        for e in events:
            feats = e["features"]
            for n in names:
                v = feats.get(n)
                if isinstance(v, float | int) and v == v:
                    d = detectors[n]
                    d.update(float(v))
                    if d.drift_detected:
                        flagged += 1
        busy += time.perf_counter() - t0
    return {"events_per_s": n_events / busy, "seconds": busy, "detections": flagged}


def peak_rss_child(n_events: int, batch: int) -> float:
    """Peak RSS (MiB) of a fresh process that feeds ``n_events`` through the engine."""
    code = (
        "import sys, resource; sys.path.insert(0, 'scripts'); import bench_engine as b; "
        f"b.run_engine({n_events}, {batch}, False, chunk={batch}); "  # one batch of events alive at a time
        # VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's size on Linux
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--long-events", type=int, default=10_000_000)
    ap.add_argument(
        "--river-events", type=int, default=200_000, help="the baseline is slow: a prefix suffices"
    )
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    excluded = run_engine(args.events, args.batch, include_decode=False)
    included = run_engine(args.events, args.batch, include_decode=True)
    river = run_river(args.river_events, args.batch)
    figures: dict[str, object] = {
        "benchmark": "engine",
        "events": args.events,
        "features": {"numeric": N_NUMERIC, "categorical": N_CATEGORICAL},
        "batch": args.batch,
        "engine_events_per_s_decode_excluded": round(excluded["events_per_s"]),
        "engine_events_per_s_decode_included": round(included["events_per_s"]),
        "engine_steady_events_per_s_decode_excluded": round(excluded["steady_events_per_s"]),
        "engine_steady_events_per_s_decode_included": round(included["steady_events_per_s"]),
        "river_adwin_baseline_events_per_s": round(river["events_per_s"]),
        "speedup_vs_river": round(excluded["events_per_s"] / river["events_per_s"], 2),
        "windows_tested": excluded["windows"],
        "alerts": excluded["alerts"],
    }
    if not args.skip_memory:
        short = peak_rss_child(args.events, args.batch)
        long = peak_rss_child(args.long_events, args.batch)
        figures.update(
            {
                "peak_rss_mib_short": round(short, 1),
                "peak_rss_mib_long": round(long, 1),
                "long_events": args.long_events,
                "memory_growth_ratio": round(long / short, 3),
            }
        )
    figures["cpu_seconds_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
