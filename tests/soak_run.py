"""The soak run: a paced stream into two workers for minutes, one of them killed with SIGKILL half way.

Shared by the nightly test (``tests/integration/test_service_soak.py``) and ``scripts/soak.py``, which prints
the figures as one JSON line. The stream is made of segments of ``segment_seconds`` of wall time; every
``drift_every``-th segment (from the second) shifts ``num_00``'s mean, so drift episodes open and resolve at
known times. While it runs, a sampler reads each worker's RSS and thread count, and a consumer tails the
alerts topic noting when each alert arrives. Afterwards the same segments, regenerated, go through the
replay engine: the service's final stage-2 state and alerts must equal it, and the event count of every
window it tested (from the ``window_stats`` topic) must equal the engine's.

Event-to-alert latency is measured from the moment the event that lets a window close was produced (the
first event whose time passes the window's end plus the allowed lateness: before it, no service could judge
the window) to the moment its alert is read from the alerts topic.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stream_monitor.core.alerts import Alert, Status, decode_alert
from stream_monitor.core.events import Stream
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_spec import Drift
from tests import service_support as ss
from tests.soak_figures import Sample, SoakResult, alert_latencies, finite, judge, memory_drift, percentile

N_PARTITIONS = 3
CHUNK_EVERY_S = 0.1
MIB = 1024 * 1024


@dataclass(frozen=True)
class SoakPlan:
    """How long, how fast, and when things happen."""

    seconds: float
    rate: float = 500.0  # events per wall-clock second
    segment_seconds: float = 30.0
    drift_every: int = 4  # segment k drifts when k % drift_every == 1
    warmup_fraction: float = 0.2  # of a worker's life, before memory is compared
    sample_every_s: float = 5.0

    @property
    def n_segments(self) -> int:
        return max(int(self.seconds // self.segment_seconds), 2)

    @property
    def segment_events(self) -> int:
        return int(self.rate * self.segment_seconds)

    def drifting(self, k: int) -> bool:
        return k % self.drift_every == 1

    def kill_at_s(self) -> float:
        """Half way, moved to the middle of a segment without drift and after one (so no episode opens while
        a worker is missing, and the last one has resolved)."""
        k = self.n_segments // 2
        while self.drifting(k) or self.drifting(k - 1):
            k += 1
        return (k + 0.5) * self.segment_seconds


def segments(plan: SoakPlan) -> Iterator[list[dict[str, Any]]]:
    """The stream, one segment at a time: the same plan gives the same events. Each segment starts right
    after the previous one's last event, so the stream is in event-time order."""
    start = ss.LIVE_START
    for k in range(plan.n_segments):
        drifts = [Drift("mean_shift", "num_00", start_ts=start, magnitude=1.5)] if plan.drifting(k) else []
        events = generate(ss.spec(100 + k, start), plan.segment_events, drifts).features
        for e in events:
            e["event_id"] = f"s{k:04d}-{e['event_id']}"
        start = events[-1]["ts"] + 1.0 / ss.RATE
        yield events


def sentinels(last: dict[str, Any]) -> list[dict[str, Any]]:
    ts = last["ts"] + ss.WINDOW["allowed_lateness_seconds"] + 2 * ss.WINDOW["slice_seconds"]
    return [{**last, "event_id": f"sentinel-{p}", "ts": ts} for p in range(N_PARTITIONS)]


def boundary_of(sentinel_ts: float) -> int:
    return int((sentinel_ts - ss.WINDOW["allowed_lateness_seconds"]) // ss.WINDOW["slice_seconds"])


# ---- the threads that run beside the service -----------------------------------------------------------------
class PacedFeeder(threading.Thread):
    """Produces the plan's stream in chunks on a fixed schedule; notes when each chunk was acknowledged and
    the latest event time it held."""

    def __init__(self, deployment: ss.Deployment, plan: SoakPlan) -> None:
        super().__init__(daemon=True)
        self.deployment, self.plan = deployment, plan
        self.chunk = max(int(plan.rate * CHUNK_EVERY_S), 1)
        self.produced = 0
        self.stamps_ts: list[float] = []  # max event time of each chunk, increasing
        self.stamps_wall: list[float] = []  # when that chunk was flushed
        self.last: dict[str, Any] | None = None
        self.started_at = 0.0
        self.behind_s = 0.0  # the most the schedule slipped
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.started_at = time.time()
            i = 0
            for events in segments(self.plan):
                for lo in range(0, len(events), self.chunk):
                    due = self.started_at + i * CHUNK_EVERY_S
                    now = time.time()
                    if due > now:
                        time.sleep(due - now)  # pacing the producer, not waiting for a result
                    else:
                        self.behind_s = max(self.behind_s, now - due)
                    chunk = events[lo : lo + self.chunk]
                    self.deployment.produce_events(chunk, N_PARTITIONS)
                    self.stamps_ts.append(chunk[-1]["ts"])
                    self.stamps_wall.append(time.time())
                    self.produced += len(chunk)
                    i += 1
                self.last = events[-1]
        except BaseException as exc:  # reported by the caller
            self.error = exc


class AlertTail(threading.Thread):
    """Reads the alerts topic from the start as alerts arrive, noting the wall time each was read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.seen: list[tuple[Alert, float]] = []
        self.stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"soak-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            }
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for msg in self._consumer.consume(100, timeout=0.05):
                    if msg.error() is None and msg.value():
                        self.seen.append((decode_alert(msg.value()), time.time()))
        finally:
            self._consumer.close()


class Sampler(threading.Thread):
    """Reads every live worker's RSS and thread count every ``every_s``."""

    def __init__(self, deployment: ss.Deployment, every_s: float, t0: float) -> None:
        super().__init__(daemon=True)
        self.deployment, self.every_s, self.t0 = deployment, every_s, t0
        self.samples: dict[int, list[Sample]] = {}  # worker index -> samples
        self.started: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            for i, w in enumerate(list(self.deployment.workers)):
                if w.proc.poll() is not None:
                    continue
                try:
                    status = w.proc_status()
                except ProcessLookupError:  # exited between poll and read
                    continue
                self.started.setdefault(i, time.time() - self.t0)
                self.samples.setdefault(i, []).append(
                    Sample(time.time() - self.t0, status["rss"], status["threads"])
                )


# ---- the run ---------------------------------------------------------------------------------------------------
def run_soak(directory: Path, bootstrap: str, plan: SoakPlan) -> SoakResult:
    """Deploy two workers, stream the plan through them, kill one half way (starting a replacement), check
    the final state against the replay engine and return the figures."""
    d = ss.Deployment(directory, bootstrap, extra_topics=("window_stats",), snapshot_seconds=5.0)
    tail: AlertTail | None = None
    sampler: Sampler | None = None
    try:
        d.create_topics()
        first, second = d.start_worker(), d.start_worker()
        ss.wait_for(
            lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both workers assigned"
        )
        tail = AlertTail(bootstrap, d.topics["alerts"])
        tail.start()
        feeder = PacedFeeder(d, plan)
        feeder.start()
        t0 = time.time()
        sampler = Sampler(d, plan.sample_every_s, t0)
        sampler.start()
        kill_at = plan.kill_at_s()
        ss.wait_for(lambda: time.time() - t0 >= kill_at or not feeder.is_alive(), kill_at + 60, "half way")
        first.kill9()
        d.start_worker()
        feeder.join(plan.seconds + 120)
        assert not feeder.is_alive() and feeder.error is None and feeder.last is not None, feeder.error
        ends = sentinels(feeder.last)
        d.produce("features", [orjson.dumps(e) for e in ends], partitions=list(range(N_PARTITIONS)))
        sampler.stop.set()

        pipeline, engine_alerts, engine_windows = _oracle(plan, ends)
        emitted = ss.compare_final_state(d, boundary_of(ends[0]["ts"]), pipeline, engine_alerts)
        service_windows = _windows_published(d, set(engine_windows))
        tail.stop.set()
        tail.join(10)
        figures = _figures(plan, d, feeder, tail, sampler, kill_at, engine_windows, service_windows)
        figures["alerts"] = len(emitted)
        for w in d.workers[1:]:
            code, _ = w.terminate()
            assert code == 0, w.log()[-3000:]
        return SoakResult(figures, judge(figures))
    finally:
        for thread in (tail, sampler):
            if thread is not None:
                thread.stop.set()
        d.close()


def _oracle(
    plan: SoakPlan, ends: list[dict[str, Any]]
) -> tuple[Any, list[Alert], dict[tuple[float, float], int]]:
    """The replay engine over the same segments and sentinels: its pipeline, alerts, and events per tested
    window."""
    eng = ss.engine()
    eng.record_stats(True)
    alerts: list[Alert] = []
    windows: dict[tuple[float, float], int] = {}
    for events in [*segments(plan), ends]:
        for i in range(0, len(events), 500):
            alerts.extend(eng.process_events(Stream.FEATURES, events[i : i + 500]).alerts)
        for r in eng.take_stats():
            windows[(r.window.start_ts, r.window.end_ts)] = r.window.events
    return eng.pipelines[ss.MODEL], alerts, windows


def _windows_published(d: ss.Deployment, want: set[tuple[float, float]]) -> dict[tuple[float, float], int]:
    """Events per tested window from the ``window_stats`` topic (at least once: repeats agree), waiting for
    every window the engine tested."""

    def read() -> dict[tuple[float, float], int] | None:
        got: dict[tuple[float, float], int] = {}
        for msg in d.read("window_stats", timeout=60):
            window = orjson.loads(msg.value())["window"]
            got[(window["start_ts"], window["end_ts"])] = window["events"]
        return got if want <= set(got) else None

    try:
        found: dict[tuple[float, float], int] = ss.wait_for(read, 60, "every window's statistics", every=2.0)
        return found
    except AssertionError:
        last = read()
        return last or {}


def _figures(
    plan: SoakPlan,
    d: ss.Deployment,
    feeder: PacedFeeder,
    tail: AlertTail,
    sampler: Sampler,
    kill_at: float,
    engine_windows: dict[tuple[float, float], int],
    service_windows: dict[tuple[float, float], int],
) -> dict[str, Any]:
    lateness = ss.WINDOW["allowed_lateness_seconds"]
    firing = alert_latencies(tail.seen, feeder.stamps_ts, feeder.stamps_wall, lateness, Status.FIRING)
    every = alert_latencies(tail.seen, feeder.stamps_ts, feeder.stamps_wall, lateness)
    drifts: dict[str, float] = {}
    rss: dict[str, list[float]] = {}
    threads: list[int] = []
    for i, samples in sampler.samples.items():
        life = samples[-1].at - sampler.started[i]
        warm_from = sampler.started[i] + plan.warmup_fraction * life
        drifts[f"worker-{i}"] = finite(memory_drift(samples, warm_from), 4)
        warm = [s for s in samples if s.at >= warm_from]
        rss[f"worker-{i}"] = [round(warm[0].rss / MIB, 1), round(warm[-1].rss / MIB, 1)] if warm else []
        if i != 0:  # worker 0 is the one killed: its life ends half way
            threads.extend(s.threads for s in warm)
    keys = {(m.key() or b"").decode() for m in d.read("state", timeout=60)}
    state_bound = sum(len(_partitions(d, k)) for k in ("features", "predictions", "labels", "partials"))
    lost = sum(max(n - service_windows.get(w, 0), 0) for w, n in engine_windows.items())
    extra = sum(max(service_windows[w] - n, 0) for w, n in engine_windows.items() if w in service_windows)
    return {
        "seconds": plan.seconds,
        "rate": plan.rate,
        "events": feeder.produced,
        "producer_behind_max_s": round(feeder.behind_s, 3),
        "workers": 2,
        "killed_at_s": kill_at,
        "rss_mib_after_warmup_first_last": rss,
        "memory_drift": drifts,
        # worker 0 is killed half way: its drift is over half the run, so it is reported, not judged
        "memory_drift_max": max(
            (v for k, v in drifts.items() if k != "worker-0" and v is not None), default=None
        ),
        "threads_after_warmup": [min(threads, default=0), max(threads, default=0)],
        "state_keys": len(keys),
        "state_keys_bound": state_bound,
        "windows_tested": len(engine_windows),
        "windows_missing": len(set(engine_windows) - set(service_windows)),
        "lost_events": lost,
        "extra_events": extra,
        "alerts_firing_timed": len(firing),
        "latency_p50_s": finite(percentile(firing, 50), 3),
        "latency_p99_s": finite(percentile(firing, 99), 3),
        "latency_max_all_s": finite(max(every, default=math.nan), 3),
    }


def _partitions(d: ss.Deployment, key: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": d.bootstrap, "group.id": f"soak-meta-{uuid.uuid4().hex[:6]}"})
    try:
        topic = d.topics[key]
        return list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()
