"""Benchmark of the Kafka service: prints ONE JSON line of figures.

1. Produces a 4-partition topic of 1M feature events (20 numeric + 3 categorical features; stable stream).
2. The *floor*, in a child process: a bare confluent-kafka consumer with orjson decoding, over the same topic.
3. One worker (``service.worker.Worker``, the code ``stream-monitor run`` runs), in a child process, over the same
   topic: events/s from its first consumed batch to the commit of the last offset (which, by design, follows the
   state snapshot that covers it), its peak RSS, its CPU seconds, and where its busy time went (stage 1, stage 2,
   and the rest: consume, produce, snapshots).
4. Latency: with the worker caught up, a drifting continuation of the stream is produced at a steady pace; for
   each alert, the time from the moment its window *could* close (the first event past the window's end plus the
   allowed lateness was produced) to the alert arriving on the alerts topic. p50 / p95 / max.

The machine is shared: the JSON carries the load average before and after, and CPU-time rates
(events per CPU-second of the process) that load does not distort as much as wall-clock rates.

Usage: python scripts/bench_service.py [--events 1000000] [--partitions 4] [--lateness 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_NUMERIC, N_CATEGORICAL = 20, 3
RATE = 20_000.0  # events/s of event time (the reference's rate): 5,000-event windows every 0.25 s
MODEL = "churn-v3"
REF_START = 1763766000.0
LIVE_START = REF_START + 86400.0


def spec(seed: int, start: float, n_drift: int = 0) -> Any:
    from stream_monitor.devtools.synthetic_spec import StreamSpec

    return StreamSpec(
        model_id=MODEL,
        n_numeric=N_NUMERIC,
        n_categorical=N_CATEGORICAL,
        seed=seed,
        events_per_second=RATE,
        start_ts=start,
        with_predictions=False,
        with_labels=False,
    )


def write_setup(directory: Path, bootstrap: str, partitions: int, lateness: float, snapshot_s: float) -> Path:
    import yaml

    from stream_monitor.devtools.synthetic import generate
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    builder = ReferenceBuilder(seed=0)
    builder.add_features(generate(spec(1, REF_START), 50_000).features)
    from stream_monitor.adapters.files.reference_file import save_reference

    save_reference(builder.build(), directory / "reference.json")
    suffix = uuid.uuid4().hex[:8]
    topics = {
        k: f"bench-{k}-{suffix}"
        for k in ("features", "predictions", "labels", "features_batch", "alerts", "dlq", "partials", "state")
    }
    raw = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {**topics, "partitions": partitions},
        "service": {
            "metrics_port": 0,
            "consumer_group": f"bench-{suffix}",
            "snapshot_seconds": snapshot_s,
            "idle_partition_seconds": 1.0,
        },
        "models": {MODEL: {"reference": "reference.json", "window": {"allowed_lateness_seconds": lateness}}},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def produce(config_path: Path, n_events: int) -> dict[str, float]:
    from confluent_kafka import Producer

    from stream_monitor.config.loading import load_config
    from stream_monitor.devtools.synthetic import iter_feature_batches

    cfg = load_config(config_path)
    # Uncompressed, so that every reader measured (librdkafka and Faust's aiokafka) can read it as is.
    p = Producer(
        {
            "bootstrap.servers": cfg.kafka.bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
        }
    )
    topic = cfg.topics.features
    started = time.perf_counter()
    for events in iter_feature_batches(spec(2, LIVE_START), n_events, 10_000):
        for e in events:
            while True:
                try:
                    p.produce(topic, orjson.dumps(e), key=e["event_id"])
                    break
                except BufferError:
                    p.poll(0.05)
        p.poll(0)
    p.flush(120)
    return {"produce_seconds": time.perf_counter() - started}


def _reader(bootstrap: str, group_prefix: str, topic: str) -> Any:
    """A consumer of ``topic`` from its start, in a group of its own, committing nothing."""
    from confluent_kafka import Consumer

    group = f"{group_prefix}-{uuid.uuid4().hex[:8]}"
    settings = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    c = Consumer({**settings, "enable.auto.commit": False})
    c.subscribe([topic])
    return c


# ---- child: the floor ------------------------------------------------------------------------------------------
def floor(config_path: Path, n_events: int) -> dict[str, Any]:
    import resource

    from stream_monitor.config.loading import load_config

    cfg = load_config(config_path)
    c = _reader(cfg.kafka.bootstrap_servers, "floor", cfg.topics.features)
    seen = 0
    first = None
    cpu0 = time.process_time()
    loads = orjson.loads
    while seen < n_events:
        msgs = c.consume(5000, timeout=1.0)
        if msgs and first is None:
            first = time.perf_counter()
            cpu0 = time.process_time()
        for m in msgs:
            if m.error() is None:
                loads(m.value())
                seen += 1
    wall = time.perf_counter() - (first or time.perf_counter())
    cpu = time.process_time() - cpu0
    c.close()
    return {
        "floor_events_per_s": round(seen / wall),
        "floor_events_per_cpu_s": round(seen / cpu),
        "floor_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# ---- child: Faust's consumer path, the same decode -----------------------------------------------------------
def faust_floor(config_path: Path, n_events: int) -> None:
    """Faust 0.15 agent with ``take_events(5000)`` and orjson decoding: what the Faust hot path would start from."""
    import faust

    from stream_monitor.config.loading import load_config

    cfg = load_config(config_path)
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{cfg.kafka.bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        autodiscover=False,
        stream_wait_empty=False,
    )
    topic = app.topic(
        cfg.topics.features, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    state: dict[str, float] = {"n": 0}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for events in stream.take_events(5000, within=0.1):
            if not state["n"]:
                state["t0"], state["c0"] = time.perf_counter(), time.process_time()
            for e in events:
                orjson.loads(e.message.value)
            state["n"] += len(events)
            if state["n"] >= n_events:
                wall, cpu = time.perf_counter() - state["t0"], time.process_time() - state["c0"]
                line = json.dumps(
                    {
                        "faust_events_per_s": round(n_events / wall),
                        "faust_events_per_cpu_s": round(n_events / cpu),
                    }
                )
                os.write(1, line.encode() + b"\n")  # Faust redirects sys.stdout into its logging
                os._exit(0)  # a measurement child: no graceful Faust shutdown needed

    faust.Worker(app, loglevel="ERROR", quiet=True).execute_from_commandline()


# ---- child: the worker -----------------------------------------------------------------------------------------
def worker(config_path: Path, n_events: int) -> None:
    """Runs the service's Worker; prints a JSON line once every input offset is committed, then keeps running
    (for the latency phase) until SIGTERM."""
    import signal

    from confluent_kafka import Consumer, TopicPartition

    from stream_monitor.adapters.kafka.worker import Worker
    from stream_monitor.app.compose import build_service
    from stream_monitor.config.loading import load_config
    from stream_monitor.pipeline.counters import ServiceStats

    cfg = load_config(config_path)
    stats = ServiceStats()
    marks: dict[str, float] = {}

    def thread_cpu(tid: int) -> float:
        """CPU seconds of one thread of this process (utime + stime from /proc)."""
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    class TimedWorker(Worker):
        def _handle(self, messages: Any) -> None:
            if "first" not in marks:
                marks["first"] = time.perf_counter()
                marks["cpu0"] = time.process_time()
                marks["main_tid"] = threading.get_native_id()
                marks["main_cpu0"] = thread_cpu(threading.get_native_id())
            super()._handle(messages)

    w = TimedWorker(cfg, build_service(cfg), stats)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    topic = cfg.topics.features

    def watch() -> None:
        probe = Consumer(
            {
                "bootstrap.servers": cfg.kafka.bootstrap_servers,
                "group.id": cfg.service.consumer_group,
                "enable.auto.commit": False,
            }
        )
        parts = [TopicPartition(topic, p) for p in range(cfg.topics.partitions)]
        ends = {p.partition: probe.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        while not stop.is_set():
            committed = {tp.partition: tp.offset for tp in probe.committed(parts, timeout=10)}
            if all(committed.get(p, -1) >= end for p, end in ends.items()):
                marks["last_commit"] = time.perf_counter()
                marks["cpu1"] = time.process_time()
                marks["main_cpu1"] = thread_cpu(int(marks["main_tid"]))
                break
            time.sleep(0.02)  # polling the group's committed offsets: there is no notification for it
        probe.close()
        snap = stats.snapshot()
        busy = {stage: h.total for stage, h in snap.batch_seconds.items()}
        wall = marks["last_commit"] - marks["first"]
        cpu = marks["cpu1"] - marks["cpu0"]
        status = Path(f"/proc/{os.getpid()}/status").read_text()
        hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        print(
            json.dumps(
                {
                    "worker_events_per_s": round(n_events / wall),
                    "worker_events_per_cpu_s": round(n_events / cpu),
                    "worker_seconds": round(wall, 2),
                    "worker_cpu_seconds": round(cpu, 2),
                    # the processing thread alone (librdkafka's own threads excluded): its rate is what one
                    # worker sustains with a core to itself
                    "worker_main_thread_cpu_seconds": round(marks["main_cpu1"] - marks["main_cpu0"], 2),
                    "worker_events_per_main_thread_cpu_s": round(
                        n_events / max(marks["main_cpu1"] - marks["main_cpu0"], 1e-9)
                    ),
                    "worker_busy_seconds": {k: round(v, 2) for k, v in busy.items()},
                    "worker_other_seconds": round(wall - sum(busy.values()), 2),
                    "worker_peak_rss_mib": round(hwm / 1024, 1),
                    "accepted": sum(v for (m, s, o), v in snap.events.items() if o == "accepted"),
                }
            ),
            flush=True,
        )

    threading.Thread(target=watch, daemon=True).start()
    w.run(stop)


# ---- latency: a drifting continuation, paced ------------------------------------------------------------------
def latency(
    config_path: Path, n_events: int, after_ts: float, pace: float, lateness: float
) -> dict[str, Any]:
    from confluent_kafka import Producer

    from stream_monitor.config.loading import load_config
    from stream_monitor.core.alerts import decode_alert
    from stream_monitor.devtools.synthetic import generate
    from stream_monitor.devtools.synthetic_spec import Drift

    cfg = load_config(config_path)
    start = after_ts + 1.0
    span = n_events / RATE
    drifts = [
        Drift("mean_shift", f"num_{i:02d}", start_ts=start + span * (i + 1) / 12, magnitude=1.0)
        for i in range(10)
    ]
    events = generate(spec(3, start), n_events, drifts).features
    alerts_seen: list[tuple[float, Any]] = []
    stop = threading.Event()

    def read_alerts() -> None:
        c = _reader(cfg.kafka.bootstrap_servers, "lat", cfg.topics.alerts)
        while not stop.is_set():
            for m in c.consume(100, timeout=0.1):
                if m.error() is None:
                    alerts_seen.append((time.perf_counter(), decode_alert(m.value())))
        c.close()

    reader = threading.Thread(target=read_alerts, daemon=True)
    reader.start()
    p = Producer(
        {"bootstrap.servers": cfg.kafka.bootstrap_servers, "linger.ms": 2, "partitioner": "murmur2_random"}
    )
    produced: list[tuple[float, float]] = []  # (max event ts of the chunk, wall time it was flushed)
    chunk = max(int(pace / 50), 1)
    t0 = time.perf_counter()
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        for e in part:
            p.produce(cfg.topics.features, orjson.dumps(e), key=e["event_id"])
        p.flush(10)
        produced.append((part[-1]["ts"], time.perf_counter()))
        ahead = t0 + (i + chunk) / pace - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)  # pacing the live stream
    time.sleep(5.0)  # let the last windows close and their alerts arrive
    stop.set()
    reader.join(5)
    lat = []
    for received, a in alerts_seen:
        if a.status.value != "firing":
            continue
        could_close = next((wall for ts, wall in produced if ts >= a.window.end_ts + lateness), None)
        if could_close is not None:
            lat.append(received - could_close)
    lat.sort()
    pick = (lambda q: round(lat[min(int(q * len(lat)), len(lat) - 1)], 3)) if lat else (lambda q: None)
    return {
        "latency_alerts": len(lat),
        "latency_p50_s": pick(0.5),
        "latency_p95_s": pick(0.95),
        "latency_max_s": round(max(lat), 3) if lat else None,
        "latency_pace_events_per_s": pace,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--lateness", type=float, default=2.0, help="allowed_lateness_seconds of the model")
    ap.add_argument("--snapshot-seconds", type=float, default=5.0, help="service.snapshot_seconds")
    ap.add_argument("--latency-events", type=int, default=200_000)
    ap.add_argument(
        "--latency-pace", type=float, default=20_000.0, help="events/s produced in the latency phase"
    )
    ap.add_argument("--no-faust", action="store_true", help="skip the Faust consumer measurement")
    ap.add_argument("--role", choices=["floor", "faust", "worker"], help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "floor":
        print(json.dumps(floor(args.config, args.events)), flush=True)
        return 0
    if args.role == "faust":
        faust_floor(args.config, args.events)
        return 0
    if args.role == "worker":
        worker(args.config, args.events)
        return 0

    from stream_monitor.adapters.kafka.topics import create_all
    from stream_monitor.config.loading import load_config
    from stream_monitor.devtools.kafka import kafka_bootstrap

    load_before = os.getloadavg()
    with kafka_bootstrap() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        config_path = write_setup(Path(tmp), bootstrap, args.partitions, args.lateness, args.snapshot_seconds)
        create_all(load_config(config_path))
        out: dict[str, Any] = {
            "benchmark": "service",
            "events": args.events,
            "partitions": args.partitions,
            "features": {"numeric": N_NUMERIC, "categorical": N_CATEGORICAL},
            "allowed_lateness_s": args.lateness,
            "snapshot_seconds": args.snapshot_seconds,
        }
        out.update(produce(config_path, args.events))
        me = [sys.executable, __file__, "--events", str(args.events), "--config", str(config_path)]
        fl = subprocess.run(
            [*me, "--role", "floor"], capture_output=True, text=True, timeout=1800, check=True
        )
        out.update(json.loads(fl.stdout.strip().splitlines()[-1]))
        if not args.no_faust:
            fa = subprocess.run(
                [*me, "--role", "faust"], capture_output=True, text=True, timeout=1800, cwd=tmp
            )
            found = re.findall(r'\{"faust_events_per_s".*?\}', fa.stdout)  # Faust adds terminal escapes
            tail = (fa.stdout + fa.stderr).strip()[-300:]
            out.update(json.loads(found[-1]) if found else {"faust_error": tail})
        proc = subprocess.Popen(
            [*me, "--role", "worker"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert proc.stdout is not None
        out.update(json.loads(proc.stdout.readline()))
        out["worker_vs_floor"] = round(out["worker_events_per_s"] / out["floor_events_per_s"], 3)
        out["worker_vs_floor_cpu"] = round(out["worker_events_per_cpu_s"] / out["floor_events_per_cpu_s"], 3)
        last_ts = LIVE_START + args.events / RATE * 1.1
        out.update(latency(config_path, args.latency_events, last_ts, args.latency_pace, args.lateness))
        proc.terminate()
        proc.wait(30)
    out["target_events_per_s"] = 100_000
    out["meets_target"] = out["worker_events_per_s"] >= 100_000 and out["worker_vs_floor"] >= 0.5
    out["load_avg_before"] = [round(x, 2) for x in load_before]
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
