"""Benchmark of ``stream-monitor replay`` end to end: prints ONE JSON line of figures (progress on stderr).

What it measures, on a seeded JSON-lines stream of N feature events (20 numeric + 3 categorical features, the
stream of ``scripts/bench_engine.py``) with one prediction (and score) per event, and no labels unless
``--labels``:

* ``replay``: ``python -m stream_monitor replay --config C --features F --predictions P --alerts-out A``
  run as a child process. Wall time, the child's CPU time (user + system, from ``RUSAGE_CHILDREN`` deltas)
  and its peak RSS (``/usr/bin/time -f %M`` when available, else the child's own ``ru_maxrss`` from
  ``os.wait4``, an upper bound as it includes this process's size at spawn). Nothing is subtracted:
  interpreter start-up, imports, config and reference loading, file reading and JSON decoding are all in.
  ``feature_events_per_s`` is N / wall seconds (the prediction lines are read and processed too, but not
  counted). ``startup_s`` is the median wall time of the same command on a one-line features and a one-line
  predictions file: the fixed cost included in the figure above.
* ``diy_river_adwin``: the do-it-yourself baseline, in this process, on the same features file: per line
  ``orjson.loads``, one ``river.drift.ADWIN().update(value)`` per numeric feature (None skipped, the drift
  flag checked), a dict counter per categorical feature. It reads the features file only. When the first
  200,000 lines project a full pass beyond 90 s it stops there and the rate is extrapolated (reported as
  ``baseline_events`` and ``extrapolated``); ADWIN costs a little more per value as its window grows, so an
  extrapolated baseline is, if anything, flattering to the baseline.
* ``replay_workers``: the same replay with ``--workers N`` for each N of ``--workers`` above 1: wall and CPU
  time, speed-up over one process, and whether its alerts equal the one-process ones (all but
  ``detected_at``, the wall-clock time they were emitted).
* ``memory_growth`` (with ``--memory``): the peak RSS of a replay of 3x the events (same generator, seed
  and config) against the 1x replay's; target: at most 10% more.
* ``ratio_vs_diy``: replay feature events/s over the baseline's events/s (both wall clock), checked with the
  replay rate against the targets: >= 2x the baseline and >= 120,000 feature events/s.

The live stream and the reference (20,000 events, another seed, no drift, with predictions, and labels when
``--labels``) are written by ``scripts/synth_stream.py`` in child processes, then ``reference build`` and
``config init`` (default config) run on the reference. Everything is cached in ``--workdir`` (keyed by the
generator's arguments) when given, else written to a temporary directory removed at the end. The live stream
carries bench_engine's drift (a 0.5 sd mean shift of num_03, 30 s of event time in, i.e. after 600k events at
20k events/s), so a 1M run raises alerts and a 200k run ends before it; with ``--labels``, labels come about
2 s of event time (40k events) after their prediction. The cache is keyed by arguments, not by the generator's
code: empty the workdir after changing ``stream_monitor/devtools/synthetic*.py``. ``source`` (commit, and a hash of any
uncommitted change under stream_monitor/) and ``host`` (cores, load before the replay) tell runs apart.

Usage: python scripts/bench_replay.py [--events 1000000] [--seed 2] [--workdir DIR] [--labels]
                                      [--skip-baseline] [--workers 1,2] [--memory]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson
from bench_engine import N_CATEGORICAL, N_NUMERIC, RATE, _live_spec  # same stream as the engine benchmark
from bench_source import source_state  # the commit a figure was measured on
from river.drift import ADWIN

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
REFERENCE_EVENTS = 20_000
LABEL_DELAY_S = 2.0  # mean, event time: 40k events at RATE
TARGET_EVENTS_PER_S = 120_000
TARGET_RATIO = 2.0
TARGET_RSS_GROWTH = 0.10  # peak RSS of a 3x replay over the 1x one, minus 1
BASELINE_PROBE = 200_000  # lines timed before deciding whether a full baseline pass fits the budget
BASELINE_BUDGET_S = 90.0
STARTUP_RUNS = 3
GNU_TIME = Path("/usr/bin/time")
# River ships no type hints (as in stream_monitor/detectors/river_adapter.py)
_ADWIN: Final[Callable[[], Any]] = ADWIN


def log(message: str) -> None:
    print(f"[bench_replay] {message}", file=sys.stderr, flush=True)


def synth(
    out: Path, n_events: int, seed: int, labels: bool, drift: list[str], start_ts: float | None = None
) -> dict[str, Any]:
    """Write a stream with ``scripts/synth_stream.py`` into ``out``, unless a finished one is there."""
    summary_path = out / "summary.json"
    if summary_path.exists():
        log(f"cached {out}")
        return dict(json.loads(summary_path.read_text()))
    spec, _ = _live_spec()
    cmd = [
        sys.executable,
        str(SCRIPTS / "synth_stream.py"),
        "--events",
        str(n_events),
        "--seed",
        str(seed),
        "--numeric",
        str(spec.n_numeric),
        "--categorical",
        str(spec.n_categorical),
        "--rate",
        str(spec.events_per_second),
        "--label-delay",
        str(LABEL_DELAY_S),
    ]
    if start_ts is not None:
        cmd += ["--start-ts", repr(start_ts)]
    if not labels:
        cmd.append("--no-labels")
    for text in drift:
        cmd += ["--drift", text]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating {n_events} events (seed {seed}) into {out} ...")
    t0 = time.perf_counter()
    result = subprocess.run([*cmd, "--out", str(tmp)], check=True, capture_output=True, cwd=ROOT)
    summary = dict(orjson.loads(result.stdout))
    summary["command"] = cmd
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"  done in {time.perf_counter() - t0:.1f} s")
    return summary


def cache_key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream_monitor", *args]


def build_config(ref_dir: Path, labels: bool) -> Path:
    config = ref_dir / "config.yaml"
    if config.exists():
        return config
    build = ["reference", "build", "--features", str(ref_dir / "features.jsonl")]
    build += ["--predictions", str(ref_dir / "predictions.jsonl")]
    if labels:
        build += ["--labels", str(ref_dir / "labels.jsonl")]
    log("reference build + config init ...")
    subprocess.run(cli(*build, "--out", str(ref_dir / "reference.json")), check=True, capture_output=True)
    tmp = ref_dir / "config.yaml.tmp"
    init = ["config", "init", "--reference", str(ref_dir / "reference.json"), "--out", str(tmp)]
    subprocess.run(cli(*init), check=True, capture_output=True)
    tmp.rename(config)
    return config


def warm(*paths: Path) -> None:
    """Read files once so every timed pass starts from the page cache, whatever ran before."""
    for path in paths:
        with path.open("rb") as fh:
            while fh.read(1 << 22):
                pass


def run_replay(config: Path, files: dict[str, Path], alerts: Path, workers: int = 1) -> dict[str, Any]:
    """Run one replay as a child process; wall and CPU seconds, peak RSS (MiB) and the alerts it wrote.

    With ``workers`` > 1 the CPU time and RSS are the whole process tree's (``RUSAGE_CHILDREN`` and GNU
    time's ``%M`` cover the worker processes too; ``%M`` is the largest single process, not the sum).
    """
    cmd = cli("replay", "--config", str(config), "--features", str(files["features"]))
    if workers > 1:
        cmd += ["--workers", str(workers)]
    cmd += ["--predictions", str(files["predictions"])]
    if "labels" in files:
        cmd += ["--labels", str(files["labels"])]
    cmd += ["--alerts-out", str(alerts), "--no-progress"]
    rss_file = alerts.with_suffix(".maxrss")
    if GNU_TIME.exists():
        cmd = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *cmd]
    with tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, for the fallback RSS
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"replay exited with {proc.returncode}: {' '.join(cmd)}\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if GNU_TIME.exists():
        rss_kib, rss_source = float(rss_file.read_text().split()[-1]), "/usr/bin/time %M"
    else:
        rss_kib, rss_source = float(usage.ru_maxrss), "wait4 ru_maxrss (upper bound)"
    with alerts.open("rb") as fh:
        n_alerts = sum(1 for line in fh if line.strip())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": rss_kib / 1024,
        "rss_source": rss_source,
        "alerts": n_alerts,
    }


def _alerts_but_processing_time(path: Path) -> list[dict[str, Any]]:
    """The alert events of a file without ``detected_at`` (the wall-clock time a run emitted them)."""
    out = []
    for line in path.read_bytes().splitlines():
        alert = orjson.loads(line)
        alert.pop("detected_at", None)
        out.append(alert)
    return out


def first_lines(files: dict[str, Path], out: Path) -> dict[str, Path]:
    """One-line copies of the input files (the first line of each non-empty one), for the start-up cost."""
    out.mkdir(parents=True, exist_ok=True)
    small: dict[str, Path] = {}
    for name, path in files.items():
        with path.open("rb") as fh:
            line = fh.readline()
        if line:
            small[name] = out / path.name
            small[name].write_bytes(line)
    return small


def diy_river(path: Path, total: int) -> dict[str, Any]:
    """The DIY baseline: decode each line, one River ADWIN per numeric feature, dict counts per categorical."""
    spec, _ = _live_spec()
    detectors = [(name, _ADWIN()) for name in spec.numeric_names]
    counts: list[tuple[str, dict[Any, int]]] = [(name, {}) for name in spec.categorical_names]
    loads = orjson.loads
    events = detections = 0
    extrapolated = False
    t0, c0 = time.perf_counter(), time.process_time()
    with path.open("rb") as fh:
        for line in fh:
            feats = loads(line)["features"]
            for name, detector in detectors:
                value = feats.get(name)
                if value is not None:
                    detector.update(value)
                    if detector.drift_detected:
                        detections += 1
            for name, counter in counts:
                key = feats.get(name)
                counter[key] = counter.get(key, 0) + 1
            events += 1
            if events == BASELINE_PROBE and total > events:
                projected = (time.perf_counter() - t0) * total / events
                if projected > BASELINE_BUDGET_S:
                    log(f"  baseline projects {projected:.0f} s for {total} lines: stopping at {events}")
                    extrapolated = True
                    break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "events": events,
        "extrapolated": extrapolated,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(events / wall),
        "events_per_cpu_s": round(events / cpu),
        "detections": detections,
    }


def memory_growth(
    args: argparse.Namespace, config: Path, drift: list[str], rss_1x: float, n_1x: int, workdir: Path
) -> dict[str, Any]:
    """Peak RSS of a replay of three times the events (same generator and seed) against the 1x replay's:
    constant memory means the ratio stays within ``TARGET_RSS_GROWTH``."""
    spec, _ = _live_spec()
    n_3x = 3 * args.events
    key = cache_key(n_3x, args.seed, args.labels, spec, drift, LABEL_DELAY_S)
    live_dir = workdir / f"live-{n_3x}-{key}"
    live = synth(live_dir, n_3x, args.seed, args.labels, drift, spec.start_ts)
    names = ["features", "predictions", *(["labels"] if args.labels else [])]
    files = {name: live_dir / f"{name}.jsonl" for name in names}
    log(f"replay of {live['counts']['features']} feature events for the memory growth ...")
    warm(*files.values())
    run = run_replay(config, files, workdir / f"out-{key}-alerts.jsonl")
    growth = run["peak_rss_mib"] / rss_1x - 1.0
    log(f"  peak RSS {run['peak_rss_mib']:.0f} MiB vs {rss_1x:.0f} MiB ({growth:+.1%})")
    return {
        "events_1x": n_1x,
        "peak_rss_1x_mib": round(rss_1x, 1),
        "events_3x": int(live["counts"]["features"]),
        "peak_rss_3x_mib": round(run["peak_rss_mib"], 1),
        "wall_3x_s": round(run["wall_s"], 3),
        "growth": round(growth, 4),
        "target_growth": TARGET_RSS_GROWTH,
        "met": growth <= TARGET_RSS_GROWTH,
    }


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    spec, drifts = _live_spec()
    drift = [f"{d.kind}:{d.feature}:start={d.start_ts!r}:magnitude={d.magnitude!r}" for d in drifts]
    ref_key = cache_key(REFERENCE_EVENTS, args.reference_seed, args.labels, spec, LABEL_DELAY_S)
    live_key = cache_key(args.events, args.seed, args.labels, spec, drift, LABEL_DELAY_S)
    ref_dir = workdir / f"reference-{REFERENCE_EVENTS}-{ref_key}"
    live_dir = workdir / f"live-{args.events}-{live_key}"
    synth(ref_dir, REFERENCE_EVENTS, args.reference_seed, args.labels, [])
    config = build_config(ref_dir, args.labels)
    live = synth(live_dir, args.events, args.seed, args.labels, drift, spec.start_ts)
    n_events = int(live["counts"]["features"])
    names = ["features", "predictions", *(["labels"] if args.labels else [])]
    files = {name: live_dir / f"{name}.jsonl" for name in names}
    out_dir = workdir / f"out-{live_key}"
    out_dir.mkdir(exist_ok=True)

    log(f"start-up cost: {STARTUP_RUNS} replays of one-line files ...")
    small = first_lines(files, out_dir / "one-line")
    startup = [
        run_replay(config, small, out_dir / "one-line-alerts.jsonl")["wall_s"] for _ in range(STARTUP_RUNS)
    ]

    log(f"replay of {n_events} feature events ...")
    warm(*files.values())
    load_before = os.getloadavg()[0]
    source = source_state(ROOT)
    replay = run_replay(config, files, out_dir / "alerts.jsonl")
    log(f"  {replay['wall_s']:.1f} s wall, {replay['cpu_s']:.1f} s CPU, {replay['alerts']} alerts")

    scaled: dict[str, Any] = {}
    for workers in args.workers:
        if workers == 1:
            continue
        log(f"replay with --workers {workers} ...")
        alerts = out_dir / f"alerts-w{workers}.jsonl"
        run = run_replay(config, files, alerts, workers)
        scaled[str(workers)] = {
            "wall_s": round(run["wall_s"], 3),
            "cpu_s": round(run["cpu_s"], 3),
            "feature_events_per_s": round(n_events / run["wall_s"]),
            "speedup": round(replay["wall_s"] / run["wall_s"], 2),
            "largest_process_rss_mib": round(run["peak_rss_mib"], 1),
            "alerts_identical": _alerts_but_processing_time(alerts)
            == _alerts_but_processing_time(out_dir / "alerts.jsonl"),
        }
        log(f"  {run['wall_s']:.1f} s wall ({scaled[str(workers)]['speedup']}x)")

    memory: dict[str, Any] | None = None
    if args.memory:
        memory = memory_growth(args, config, drift, replay["peak_rss_mib"], n_events, workdir)

    baseline: dict[str, Any] | None = None
    if not args.skip_baseline:
        log("DIY River ADWIN baseline on the features file ...")
        warm(files["features"])
        baseline = diy_river(files["features"], n_events)
        log(f"  {baseline['events']} events in {baseline['wall_s']:.1f} s")

    rate = n_events / replay["wall_s"]
    ratio = rate / baseline["events_per_s"] if baseline else None
    met: dict[str, bool | None] = {
        "feature_events_per_s": rate >= TARGET_EVENTS_PER_S,
        "ratio_vs_diy": None if ratio is None else ratio >= TARGET_RATIO,
    }
    met["all"] = None if ratio is None else all(met.values())
    return {
        "bench": "replay",
        "events": n_events,
        "features": {"numeric": N_NUMERIC, "categorical": N_CATEGORICAL},
        "with_predictions": True,
        "with_labels": bool(args.labels),
        "seed": args.seed,
        "event_rate_per_s": RATE,
        "replay": {
            "wall_s": round(replay["wall_s"], 3),
            "cpu_s": round(replay["cpu_s"], 3),
            "feature_events_per_s": round(rate),
            "feature_events_per_cpu_s": round(n_events / replay["cpu_s"]),
            "peak_rss_mib": round(replay["peak_rss_mib"], 1),
            "peak_rss_source": replay["rss_source"],
            "startup_s": round(statistics.median(startup), 3),
            "alerts": replay["alerts"],
            "input_mib": round(sum(p.stat().st_size for p in files.values()) / 2**20, 1),
        },
        "replay_workers": scaled,
        "memory_growth": memory,
        "diy_river_adwin": baseline,
        "baseline_events": baseline["events"] if baseline else None,
        "ratio_vs_diy": None if ratio is None else round(ratio, 2),
        "targets": {"feature_events_per_s": TARGET_EVENTS_PER_S, "ratio_vs_diy": TARGET_RATIO, "met": met},
        "host": {"cpus": os.cpu_count(), "loadavg_1m_before_replay": round(load_before, 2)},
        "source": source,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="feature events of the live stream")
    ap.add_argument("--seed", type=int, default=2, help="seed of the live stream (bench_engine's)")
    ap.add_argument("--reference-seed", type=int, default=1, help="seed of the reference stream")
    ap.add_argument("--workdir", type=Path, help="cache of generated files (default: a temporary directory)")
    ap.add_argument("--labels", action="store_true", help="add labels to the stream and the reference")
    ap.add_argument("--skip-baseline", action="store_true", help="do not run the DIY River baseline")
    ap.add_argument(
        "--memory", action="store_true", help="also replay 3x the events and compare peak RSS (memory_growth)"
    )
    ap.add_argument(
        "--workers",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[1, 2],
        help="comma-separated replay --workers counts to time besides 1 (default 1,2)",
    )
    args = ap.parse_args()
    if args.events < 1:
        ap.error("--events must be >= 1")
    if min(args.workers) < 1:
        ap.error("--workers counts must be >= 1")
    if args.seed == args.reference_seed:
        ap.error("--seed and --reference-seed must differ")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = bench(args, args.workdir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="bench_replay-") as tmp:
            figures = bench(args, Path(tmp))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
