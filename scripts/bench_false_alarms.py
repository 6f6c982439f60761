"""False alarms on healthy but awkward streams, and detection delay on the same streams with a real shift.

Prints ONE JSON line of figures on stdout (a readable table on stderr).

Protocol
--------
* Streams (``stream_monitor/devtools/healthy_streams.py``): for each kind of ``KINDS`` (cycles with periods of
  a minute, a quarter hour, four hours and a day at 0.5 and 2 sd; Student-t noise with 2 to 5 degrees of
  freedom; lognormal tails; rare outliers of 100 to 10,000 sd; a mix of them all) and each seed 1..N, a live
  stream of ``--events`` feature events (four numeric features ``x0`` .. ``x3``) with one prediction and score
  each, at 5 events/s of event time from ``START`` (2026-01-01T00:00:00Z; 1M events span 2.3 days). Nothing
  in it drifts.
* Reference: an independent draw from the same process (seed ``1000 + seed``): three whole days just before
  ``START`` at 1 event/s (259,200 events), so it covers three periods of the longest cycle. At either rate a
  default window closes on its ``max_seconds`` (300 s), so the budget's windows per day are the live ones.
* Engine: ``stream-monitor reference build``, ``config init`` (the defaults are what is measured: whatever
  ``config init`` writes, seasonal settings included), ``replay`` of the live files (``--workers``
  passed through), all through ``python -m stream_monitor`` under this interpreter (``PYTHONPATH`` picks the
  tree measured).
* False alarms: every alert of the healthy replay is false. An *episode* is one ``alert_id`` (its firing,
  escalation and resolved events are one); reported per 1M events per kind, with the signals that raised them.
* Detection delay: the same live stream with ``x0`` shifted by ``s`` of its normal-equivalent sd (IQR / 1.349,
  finite for every tail) from event ``events / 2`` on, for each ``s`` of ``--shifts``; the replay starts
  ``SHIFT_LEAD`` events before the shift and runs ``--shift-tail`` events past it. The delay is from the shift
  to the first firing alert on ``x0`` at or after it, in events and in event-time seconds; a shift not found
  in the tail is a miss (its delay is the whole tail, which keeps means comparable). A shift that lands in a
  false-alarm episode of ``x0`` still open is *masked*: counted, and left out of the delays.
* Baseline: ``--baseline FILE`` (an earlier JSON line of this script) is printed beside today's figures, and
  the targets are checked against it: at most 1 false-alarm episode per 1M events in every kind, and a mean
  detection delay (events) at most 10% above the baseline's in every kind and shift.

Usage::

    python scripts/bench_false_alarms.py [--seeds 10] [--events 1000000] [--kinds mix,student_t]
        [--shifts 0.25,0.5] [--shift-tail 200000] [--workdir DIR] [--baseline FILE] [--jobs 2] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from bench_source import source_state  # the commit a figure was measured on
from bench_workdir import work_folder

try:
    from stream_monitor.devtools import healthy_streams as hs
except ModuleNotFoundError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stream_monitor.devtools import healthy_streams as hs

ROOT = Path(__file__).resolve().parent.parent
START: Final = 1767225600.0  # 2026-01-01T00:00:00Z
LIVE_RATE: Final = 5.0
REFERENCE_RATE: Final = 1.0
REFERENCE_DAYS: Final = 3
REFERENCE_SEED_OFFSET: Final = 1000
SHIFTED_FEATURE: Final = "x0"
SHIFT_LEAD: Final = 50_000  # events replayed before the shift (the engine's windows and CUSUMs settle)
MODEL_ID: Final = "healthy"
TARGET_EPISODES_PER_M: Final = 1.0
TARGET_DELAY_RATIO: Final = 1.10


def log(message: str) -> None:
    print(f"[bench_false_alarms] {message}", file=sys.stderr, flush=True)


def cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream_monitor", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"stream_monitor {' '.join(args[:2])} exited {done.returncode}: {done.stderr[-3000:]}"
        )


def read_alerts(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def names_feature(alert: dict[str, Any], feature: str) -> bool:
    """Whether an alert is about ``feature``: its signal, or (alerts merged per cause) one of its signals."""
    if alert.get("signal") == feature:
        return True
    details = alert.get("details") or {}
    return any(isinstance(v, list) and feature in v for k, v in details.items() if "signal" in k)


@dataclass(frozen=True)
class Job:
    kind: str
    seed: int
    events: int
    shifts: tuple[float, ...]
    shift_tail: int
    workers: int
    folder: Path
    keep_streams: bool


def replay(job: Job, config: Path, files: dict[str, Path], alerts: Path) -> float:
    t0 = time.perf_counter()
    args = ["replay", "--config", str(config), "--features", str(files["features"])]
    args += ["--predictions", str(files["predictions"]), "--alerts-out", str(alerts), "--no-progress"]
    if job.workers > 1:
        args += ["--workers", str(job.workers)]
    cli(*args)
    return time.perf_counter() - t0


def run(job: Job) -> dict[str, Any]:
    """One (kind, seed): reference, config, the healthy replay and one shifted replay per shift size."""
    laws = hs.KINDS[job.kind]
    folder = job.folder
    folder.mkdir(parents=True, exist_ok=True)
    ref_n = int(REFERENCE_DAYS * 86400 * REFERENCE_RATE)
    ref_seed = REFERENCE_SEED_OFFSET + job.seed
    ref_ts = hs.event_times(ref_n, START - REFERENCE_DAYS * 86400.0, REFERENCE_RATE, ref_seed)
    ref_files = hs.write_jsonl(hs.draw(laws, ref_ts, ref_seed), folder / "reference", MODEL_ID)
    build = ["reference", "build", "--features", str(ref_files["features"])]
    cli(*build, "--predictions", str(ref_files["predictions"]), "--out", str(folder / "reference.json"))
    config = folder / "config.yaml"
    cli("config", "init", "--reference", str(folder / "reference.json"), "--out", str(config))

    ts = hs.event_times(job.events, START, LIVE_RATE, job.seed)
    healthy = hs.draw(laws, ts, job.seed)
    files = hs.write_jsonl(healthy, folder / "healthy", MODEL_ID)
    seconds = replay(job, config, files, folder / "alerts-healthy.jsonl")
    alerts = read_alerts(folder / "alerts-healthy.jsonl")
    episodes = {a["alert_id"]: f"{a['kind']}:{a['signal']}" for a in alerts}
    result: dict[str, Any] = {
        "kind": job.kind,
        "seed": job.seed,
        "events": job.events,
        "replay_s": round(seconds, 2),
        "episodes": len(episodes),
        "episodes_by_signal": dict(Counter(episodes.values())),
        "alert_events": len(alerts),
        "shifts": {},
    }
    at = job.events // 2
    start = max(0, at - SHIFT_LEAD)
    stop = min(job.events, at + job.shift_tail)
    for size in job.shifts:
        shift = hs.Shift(SHIFTED_FEATURE, at_index=at, magnitude=size)
        shifted = hs.draw(laws, ts, job.seed, shift)  # the healthy stream's values but x0's after the shift
        name = f"shift-{size:g}"
        files = hs.write_jsonl(shifted, folder / name, MODEL_ID, start=start, stop=stop)
        replay(job, config, files, folder / f"alerts-{name}.jsonl")
        shift_ts = float(ts[at])
        on_feature = [
            a for a in read_alerts(folder / f"alerts-{name}.jsonl") if names_feature(a, SHIFTED_FEATURE)
        ]
        open_at_shift = {a["alert_id"] for a in on_feature if a["event_ts"] < shift_ts}
        open_at_shift -= {
            a["alert_id"] for a in on_feature if a["status"] == "resolved" and a["event_ts"] < shift_ts
        }
        hits = [a for a in on_feature if a["status"] == "firing" and a["event_ts"] >= shift_ts]
        first = min(hits, key=lambda a: a["event_ts"]) if hits else None
        if first is None:
            delay_events, delay_s = stop - at, float(ts[stop - 1] - shift_ts)
        else:
            delay_events = int(np.searchsorted(ts, first["event_ts"], side="right")) - at
            delay_s = float(first["event_ts"] - shift_ts)
        result["shifts"][f"{size:g}"] = {
            # a false-alarm episode on x0 still open when the shift came: no delay to measure
            "masked": bool(open_at_shift) and (first is None or first["alert_id"] in open_at_shift),
            "detected": first is not None,
            "delay_events": delay_events,
            "delay_s": round(delay_s, 1),
            "detector": first["detector"] if first else None,
        }
    if not job.keep_streams:
        for sub in ("reference", "healthy", *(f"shift-{s:g}" for s in job.shifts)):
            shutil.rmtree(folder / sub, ignore_errors=True)
    return result


def aggregate(results: Sequence[dict[str, Any]], shifts: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in dict.fromkeys(r["kind"] for r in results):
        runs = [r for r in results if r["kind"] == kind]
        events = sum(r["events"] for r in runs)
        signals: Counter[str] = Counter()
        for r in runs:
            signals.update(r["episodes_by_signal"])
        entry: dict[str, Any] = {
            "streams": len(runs),
            "events": events,
            "episodes": sum(r["episodes"] for r in runs),
            "episodes_per_1m_events": round(sum(r["episodes"] for r in runs) / events * 1e6, 3),
            "episodes_per_stream": [r["episodes"] for r in runs],
            "episodes_by_signal": dict(signals.most_common()),
            "delay": {},
        }
        for size in shifts:
            every = [r["shifts"][f"{size:g}"] for r in runs]
            d = [x for x in every if not x["masked"]]
            entry["delay"][f"{size:g}"] = {
                "masked": len(every) - len(d),
                "detected": sum(x["detected"] for x in d),
                "mean_delay_events": round(float(np.mean([x["delay_events"] for x in d])), 1) if d else None,
                "mean_delay_s": round(float(np.mean([x["delay_s"] for x in d])), 1) if d else None,
                "median_delay_events": round(float(np.median([x["delay_events"] for x in d])), 1)
                if d
                else None,
                "first_detectors": dict(Counter(str(x["detector"]) for x in d)),
            }
        out[kind] = entry
    return out


def check_targets(kinds: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    met: dict[str, Any] = {}
    for kind, entry in kinds.items():
        row: dict[str, Any] = {
            "episodes_le_1_per_1m": entry["episodes_per_1m_events"] <= TARGET_EPISODES_PER_M
        }
        before = (baseline or {}).get(kind)
        for size, d in entry["delay"].items():
            old = before["delay"].get(size) if before else None
            comparable = old is not None and None not in (old["mean_delay_events"], d["mean_delay_events"])
            row[f"delay_{size}_within_10pct"] = (
                d["mean_delay_events"] <= TARGET_DELAY_RATIO * old["mean_delay_events"]
                if comparable
                else None
            )
        met[kind] = row
    checked = [v for row in met.values() for v in row.values() if v is not None]
    met["all"] = all(checked) if checked else None
    return met


def print_table(kinds: dict[str, Any], baseline: dict[str, Any] | None, shifts: Sequence[float]) -> None:
    def old(kind: str, *path: str) -> str:
        node: Any = (baseline or {}).get(kind)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return "-" if node is None else f"{node:g}"

    head = f"{'kind':<13} {'FA ep/1M':>9} {'(base)':>7}"
    for size in shifts:
        head += f" | shift {size:g}: {'found':>5} {'delay ev':>9} {'(base)':>8} {'delay s':>8}"
    log(head)
    log("-" * len(head))
    for kind, e in kinds.items():
        line = f"{kind:<13} {e['episodes_per_1m_events']:>9g} {old(kind, 'episodes_per_1m_events'):>7}"
        for size in shifts:
            d = e["delay"][f"{size:g}"]
            base = old(kind, "delay", f"{size:g}", "mean_delay_events")
            found = f"{d['detected']}/{e['streams'] - d['masked']}"
            mean_ev, mean_s = (
                ("-" if v is None else f"{v:g}") for v in (d["mean_delay_events"], d["mean_delay_s"])
            )
            line += f" | {'':>{len(f'shift {size:g}:') - 1}} {found:>5} {mean_ev:>9} {base:>8} {mean_s:>8}"
        log(line)
        top = ", ".join(f"{k} {v}" for k, v in list(e["episodes_by_signal"].items())[:4])
        if top:
            log(f"{'':<13}   episodes by signal: {top}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="live streams use seeds 1..N (default 10)")
    p.add_argument("--events", type=int, default=1_000_000, help="live feature events per stream")
    p.add_argument("--kinds", default=",".join(hs.KINDS), help=f"comma-separated, of {', '.join(hs.KINDS)}")
    p.add_argument("--shifts", default="0.25,0.5", help="mean shifts of x0 in robust sd, comma-separated")
    p.add_argument("--shift-tail", type=int, default=200_000, help="events replayed after the shift")
    p.add_argument("--workdir", type=Path, help="keep configs, references and alerts here")
    p.add_argument("--keep-streams", action="store_true", help="keep the JSON-lines inputs in --workdir too")
    p.add_argument("--baseline", type=Path, help="a JSON line of earlier figures, printed beside today's")
    p.add_argument("--jobs", type=int, default=2, help="(kind, seed) runs at once (default 2)")
    p.add_argument("--workers", type=int, default=1, help="passed to replay --workers (default 1)")
    args = p.parse_args(argv)
    args.kind_list = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in args.kind_list if k not in hs.KINDS]
    if unknown:
        p.error(f"unknown kind(s) {unknown}; known: {', '.join(hs.KINDS)}")
    args.shift_list = tuple(float(s) for s in args.shifts.split(",") if s)
    if args.seeds < 1 or args.events < 1000 or args.jobs < 1 or args.workers < 1:
        p.error("need --seeds >= 1, --events >= 1000, --jobs >= 1, --workers >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    if baseline and (baseline.get("seeds"), baseline.get("events_per_stream")) != (args.seeds, args.events):
        log(
            f"note: the baseline ran {baseline.get('seeds')} seeds x {baseline.get('events_per_stream')} events, "
            f"this run {args.seeds} x {args.events}: compare with care"
        )
    with work_folder(args.workdir, "bench-false-alarms-") as workdir:
        source = source_state(ROOT)
        jobs = [
            Job(kind, seed, args.events, args.shift_list, args.shift_tail, args.workers,
                workdir / f"{kind}-seed{seed}", args.keep_streams)
            for kind in args.kind_list
            for seed in range(1, args.seeds + 1)
        ]  # fmt: skip
        t0 = time.perf_counter()
        results = []
        try:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                for r in pool.map(run, jobs):
                    delays = ", ".join(
                        f"{s}: {d['delay_events'] if d['detected'] else 'missed'}"
                        for s, d in r["shifts"].items()
                    )
                    log(
                        f"[{time.perf_counter() - t0:6.0f} s] {r['kind']} seed {r['seed']}: {r['episodes']} "
                        f"false-alarm episode(s) {r['episodes_by_signal']}; delay (events) {delays}"
                    )
                    results.append(r)
        except RuntimeError as exc:
            log(f"error: {exc}")
            return 2
    kinds = aggregate(results, args.shift_list)
    base_kinds = baseline.get("kinds") if baseline else None
    line = {
        "bench": "false_alarms",
        "seeds": args.seeds,
        "events_per_stream": args.events,
        "live_rate_per_s": LIVE_RATE,
        "reference": {"events": int(REFERENCE_DAYS * 86400 * REFERENCE_RATE), "rate_per_s": REFERENCE_RATE},
        "shifted_feature": SHIFTED_FEATURE,
        "shift_tail_events": args.shift_tail,
        "source": source,
        "wall_s": round(time.perf_counter() - t0, 1),
        "kinds": kinds,
        "baseline": {"source": baseline.get("source"), "kinds": base_kinds} if baseline else None,
        "targets": check_targets(kinds, base_kinds),
    }
    print(json.dumps(line), flush=True)
    print_table(kinds, base_kinds, args.shift_list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
