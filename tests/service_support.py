"""Shared pieces of the service tests: a small synthetic model, its reference profile and config, streams.

The model has 4 numeric and 2 categorical features at 200 events/s of event time: windows of 1,000 events
(5 s of event time), slices of 0.5 s, 1 s of allowed lateness, so a 20k-event stream spans 20 windows.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from stream_monitor.adapters.files.reference_file import save_reference
from stream_monitor.config.loading import parse_config
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import Alert, decode_alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_spec import Drift, StreamSpec
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.partials import decode_snapshot
from stream_monitor.stats.profiles import ReferenceProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder

MODEL = "churn-v3"
RATE = 200.0
REF_START = 1763766000.0
LIVE_START = REF_START + 86400.0
WINDOW: dict[str, Any] = {
    "max_events": 1000,
    "max_seconds": 60.0,
    "allowed_lateness_seconds": 1.0,
    "min_events": 200,
    "slice_seconds": 0.5,
}


def spec(seed: int, start: float, model_id: str = MODEL) -> StreamSpec:
    return StreamSpec(
        model_id=model_id,
        n_numeric=4,
        n_categorical=2,
        events_per_second=RATE,
        start_ts=start,
        seed=seed,
        with_predictions=False,
        with_labels=False,
    )


@functools.cache
def profile() -> ReferenceProfile:
    builder = ReferenceBuilder(seed=0)
    builder.add_features(generate(spec(1, REF_START), 20_000).features)
    return builder.build()


def model_config(**window: Any) -> dict[str, Any]:
    return {
        "reference": "reference.json",
        "window": {**WINDOW, **window},
        "alerting": {"cooldown_seconds": 0.0, "resolve_after_windows": 2},
    }


def config_dict(**service: Any) -> dict[str, Any]:
    return {"models": {MODEL: model_config()}, "service": service}


def config(**service: Any) -> MonitorConfig:
    return parse_config(config_dict(**service))


def engine(cfg: MonitorConfig | None = None) -> Engine:
    cfg = cfg or config()
    return Engine(cfg, profile().models, ManualClock(0.0))


def drift_at(fraction: float, n: int, feature: str = "num_00", magnitude: float = 1.5) -> Drift:
    return Drift("mean_shift", feature, start_ts=LIVE_START + fraction * n / RATE, magnitude=magnitude)


def live_events(n: int, drifting: bool, seed: int = 2) -> list[dict[str, Any]]:
    drifts = [drift_at(0.3, n)] if drifting else []
    return generate(spec(seed, LIVE_START), n, drifts).features


def write_config(
    directory: Path,
    bootstrap: str,
    topics: dict[str, str],
    concept: bool = False,
    client: dict[str, Any] | None = None,
    window: dict[str, Any] | None = None,
    **service: Any,
) -> Path:
    """Reference profile and config files for a ``stream-monitor run`` subprocess (the concept-drift model's
    when ``concept``). The consumer's session is short (6 s) so failover tests are quick; ``client`` overrides
    librdkafka settings, ``window`` the model's window settings."""
    if concept:
        save_reference(concept_profile(), directory / "reference.json")
        raw = {"models": {MODEL: concept_model_config(**(window or {}))}, "service": service}
    else:
        save_reference(profile(), directory / "reference.json")
        raw = {"models": {MODEL: model_config(**(window or {}))}, "service": service}
    raw["kafka"] = {
        "bootstrap_servers": bootstrap,
        "client": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **(client or {})},
    }
    raw["topics"] = topics
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ---- a deployment on a real broker: topics, worker subprocesses, producing and reading ---------------------
TOPIC_KEYS = ("features", "predictions", "labels", "features_batch", "alerts", "dlq", "partials", "state")


#: The runtimes ``run --runtime`` offers, each with what it guarantees: ``exact`` (state and the offsets it
#: covers move together, so a crash or rebalance loses and double-counts nothing) or ``at_least_once``
#: (steady state equal; a crash can lose open slices or count events twice). A fault test runs on every
#: runtime whose guarantee covers it, so a new runtime joins every test by a line here.
RUNTIMES: dict[str, str] = {"native": "exact", "faust": "at_least_once"}


def runtimes(guarantee: str | None = None) -> list[str]:
    """The runtimes (those giving ``guarantee``, if named), for ``pytest.mark.parametrize``."""
    return [r for r, g in RUNTIMES.items() if guarantee is None or g == guarantee]


# How a worker is started (``run --runtime`` is added to it): a test-only launcher may wrap the CLI.
SERVICE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "stream_monitor.cli")


class WorkerProcess:
    """``python -m stream_monitor.cli run --config ... --runtime ...`` as a subprocess, its log in a file.
    ``command`` replaces the ``python -m stream_monitor.cli`` part (a test-only launcher that wraps the CLI)."""

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        runtime: str = "native",
        command: tuple[str, ...] = SERVICE_COMMAND,
    ) -> None:
        self.log_path = log_path
        self.runtime = runtime
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*command, "run", "--config", str(config_path), "--runtime", runtime],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics_url(self, timeout: float = 30.0) -> str:
        found = wait_for(
            lambda: re.search(r"metrics on (http://\S+)/metrics", self.log()),
            timeout,
            f"metrics URL in {self.log_path}",
        )
        return found.group(1)

    def scrape(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(self.metrics_url() + path, timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.scrape().splitlines():
            m = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not m:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def proc_status(self) -> dict[str, int]:
        """``VmRSS`` (bytes) and ``Threads`` of the process, from ``/proc/PID/status`` (Linux); raises
        ``ProcessLookupError`` once it has exited."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except FileNotFoundError as exc:
            raise ProcessLookupError(self.proc.pid) from exc
        fields = dict(line.split(":", 1) for line in status.splitlines())
        if "VmRSS" not in fields:  # a zombie: exited, not yet reaped
            raise ProcessLookupError(self.proc.pid)
        return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "threads": int(fields["Threads"])}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def wait_for(condition: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)  # polling an external process: there is nothing to block on


class Deployment:
    """Unique topics and consumer group on the session broker, a config for them, and the workers started."""

    def __init__(
        self,
        directory: Path,
        bootstrap: str,
        concept: bool = False,
        client: dict[str, Any] | None = None,
        extra_topics: tuple[str, ...] = (),
        window: dict[str, Any] | None = None,
        runtime: str = "native",
        **service: Any,
    ) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.runtime = runtime
        self.bootstrap = bootstrap
        self.directory = directory
        keys = (*TOPIC_KEYS, *(("retraining",) if concept else ()), *extra_topics)
        self.topics = {k: f"{k}-{suffix}" for k in keys}
        self.group = str(service.get("consumer_group", f"sm-{suffix}"))
        defaults: dict[str, Any] = {
            "metrics_port": 0,
            "consumer_group": self.group,
            "snapshot_seconds": 1.0,
            "idle_partition_seconds": 2.0,
        }
        self.config_path = write_config(
            directory,
            bootstrap,
            self.topics,
            concept=concept,
            client=client,
            window=window,
            **{**defaults, **service},
        )
        self.workers: list[WorkerProcess] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "enable.idempotence": True,
            }
        )

    def create_topics(self) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "stream_monitor.cli",
                "topics",
                "create",
                "--config",
                str(self.config_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout

    def start_worker(
        self, env: dict[str, str] | None = None, command: tuple[str, ...] = SERVICE_COMMAND
    ) -> WorkerProcess:
        w = WorkerProcess(
            self.config_path, self.directory / f"worker-{len(self.workers)}.log", env, self.runtime, command
        )
        self.workers.append(w)
        return w

    def produce(
        self,
        topic_key: str,
        values: list[bytes | None],
        keys: list[bytes | None] | None = None,
        partitions: list[int] | None = None,
    ) -> None:
        topic = self.topics[topic_key]
        for i, value in enumerate(values):
            kwargs: dict[str, Any] = {}
            if keys is not None:
                kwargs["key"] = keys[i]
            if partitions is not None:
                kwargs["partition"] = partitions[i]
            while True:
                try:
                    self._producer.produce(topic, value, **kwargs)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self._producer.poll(0)
        assert self._producer.flush(30) == 0

    def produce_events(self, events: list[dict[str, Any]], n_partitions: int = 3) -> None:
        self.produce(
            "features",
            [orjson.dumps(e) for e in events],
            partitions=[partition_of(e, n_partitions) for e in events],
        )

    def read(self, topic_key: str, timeout: float = 5.0) -> list[Any]:
        """Every message of the topic now (from the beginning to its current end)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        topic = self.topics[topic_key]
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            todo = set()
            parts = []
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    todo.add(p)
                    parts.append(TopicPartition(topic, p, OFFSET_BEGINNING))
            out: list[Any] = []
            if not todo:
                return out
            consumer.assign(parts)
            deadline = time.monotonic() + timeout
            while todo and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.2):
                    if msg.error() is None:
                        out.append(msg)
                    elif msg.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(msg.partition())
            return out
        finally:
            consumer.close()

    def alerts(self) -> list[Alert]:
        return [decode_alert(m.value()) for m in self.read("alerts")]

    def latest_snapshots(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Newest state snapshot per key starting with ``prefix`` (``s1|`` or ``s2|``)."""
        out: dict[str, dict[str, Any]] = {}
        for msg in self.read("state"):
            key = (msg.key() or b"").decode()
            if key.startswith(prefix) and msg.value():
                out[key] = decode_snapshot(msg.value())
        return out

    def committed(self, topic_key: str) -> dict[int, int]:
        """Offsets the service's consumer group has committed on each partition of a topic (the group is the
        configured one for the native runtime, ``<group>-faust`` for Faust's)."""
        group = self.group if self.runtime == "native" else f"{self.group}-faust"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            topic = self.topics[topic_key]
            n = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
            done = consumer.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)
            return {tp.partition: tp.offset for tp in done if tp.offset >= 0}
        finally:
            consumer.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()


def kcat_messages(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """``(key, value)`` of every message of ``topic``, read by kcat (an independent client), from the start."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is installed by scripts/ci_setup.sh"
    out = subprocess.run(
        [kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [(key, value) for key, value in (line.split("\t", 1) for line in out.splitlines() if line)]


def partition_of(event: dict[str, Any], n: int) -> int:
    return zlib.crc32(str(event["event_id"]).encode()) % n


# ---- comparing the service's state with a one-process recomputation ----------------------------------------
def sentinel_ts(events: list[dict[str, Any]]) -> float:
    """A time past which every real slice is behind every partition's watermark, the window still open."""
    return max(e["ts"] for e in events) + WINDOW["allowed_lateness_seconds"] + 2 * WINDOW["slice_seconds"]


def sentinel_events(events: list[dict[str, Any]], n_partitions: int) -> list[dict[str, Any]]:
    ts = sentinel_ts(events)
    return [{**events[-1], "event_id": f"sentinel-{p}", "ts": ts} for p in range(n_partitions)]


def expected_boundary(events: list[dict[str, Any]]) -> int:
    """The slice boundary stage 2 reaches once every partition has seen its sentinel."""
    return int((sentinel_ts(events) - WINDOW["allowed_lateness_seconds"]) // WINDOW["slice_seconds"])


def engine_run(
    events: list[dict[str, Any]], batch: int = 500, cfg: MonitorConfig | None = None
) -> tuple[Any, list[Alert]]:
    """The replay engine over ``events`` in order: its pipeline (state) and every alert."""
    from stream_monitor.core.events import Stream

    eng = engine(cfg)
    alerts: list[Alert] = []
    for i in range(0, len(events), batch):
        alerts.extend(eng.process_events(Stream.FEATURES, events[i : i + batch]).alerts)
    return eng.pipelines[MODEL], alerts


def wire(alerts: list[Alert]) -> list[tuple[Any, ...]]:
    """What identifies an alert event, without its processing time (``detected_at``)."""
    return [(a.alert_id, a.status.value, a.severity.value, a.kind.value, a.signal, a.window) for a in alerts]


def assert_same_sketch(a: Any, b: Any) -> None:
    """Counts equal exactly; float sums (whose rounding depends on batch boundaries) to 1e-9."""
    import numpy as np

    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    for name in ("num_hist", "num_codes", "num_out", "cat_hist", "cat_codes", "events"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("num_sum", "num_sumsq", "mv_sums", "num_min", "num_max"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)
    assert (a.ts_min, a.ts_max, a.new_values, a.unknown_fields) == (
        b.ts_min,
        b.ts_max,
        b.new_values,
        b.unknown_fields,
    )


def assert_merger_matches(merger: Any, pipeline: Any) -> None:
    """Stage-2 state of the model equals the one-process pipeline's: windows, open window, alert episodes."""

    def pair(name: str) -> tuple[Any, Any]:
        return getattr(merger.monitor, name), getattr(pipeline.monitor, name)

    tested, skipped = pair("windows_tested"), pair("windows_skipped")
    assert tested[0] == tested[1], f"windows tested: service {tested[0]}, one process {tested[1]}"
    assert skipped[0] == skipped[1], f"windows skipped: service {skipped[0]}, one process {skipped[1]}"
    slices = (merger.assembler.start_slice, merger.assembler.last_slice)
    want = (pipeline.assembler.start_slice, pipeline.assembler.last_slice)
    assert slices == want, f"open window's slices: service {slices}, one process {want}"
    assert_same_sketch(merger.assembler.current, pipeline.assembler.current)
    assert merger.monitor.lifecycle.firing == pipeline.monitor.lifecycle.firing


# ---- concept drift: a model with predictions and labels (labels ~2 s late), performance buckets of 10 s -----
CONCEPT_SWITCH_AFTER_S = 40.0  # seconds of event time after LIVE_START
CONCEPT_STREAMS = ("features", "predictions", "labels")


def concept_spec(seed: int, start: float) -> StreamSpec:
    return StreamSpec(
        model_id=MODEL,
        n_numeric=3,
        n_categorical=1,
        events_per_second=RATE,
        start_ts=start,
        seed=seed,
        label_delay_mean_s=2.0,
        label_drop_rate=0.1,
    )


@functools.cache
def concept_profile() -> ReferenceProfile:
    ref = generate(concept_spec(1, REF_START), 20_000)
    builder = ReferenceBuilder(seed=0)
    builder.add_features(ref.features)
    builder.add_predictions(ref.predictions)
    builder.add_labels(ref.labels)
    return builder.build()


def concept_model_config(**window: Any) -> dict[str, Any]:
    return {
        **model_config(**window),
        "performance": {"bucket_seconds": 10.0},
        "labels": {"ttl_seconds": 60.0, "freshness_sla_seconds": 30.0},
    }


def concept_config(**service: Any) -> MonitorConfig:
    return parse_config({"models": {MODEL: concept_model_config()}, "service": service})


def concept_streams(n: int, switch: bool, seed: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Features, predictions and labels of ``n`` events; the labels follow another concept from
    ``LIVE_START + CONCEPT_SWITCH_AFTER_S`` when ``switch``."""
    drifts = [Drift("concept_switch", None, start_ts=LIVE_START + CONCEPT_SWITCH_AFTER_S)] if switch else []
    s = generate(concept_spec(seed, LIVE_START), n, drifts)
    return {"features": s.features, "predictions": s.predictions, "labels": s.labels}


def concept_engine_run(streams: dict[str, list[dict[str, Any]]], batch: int = 500) -> tuple[Any, list[Alert]]:
    """The replay engine over the three streams merged in event-time order, in runs of one stream."""
    from stream_monitor.core.events import Stream

    eng = Engine(concept_config(), concept_profile().models, ManualClock(0.0))
    merged = sorted(
        ((e["ts"], k, e) for k, evs in streams.items() for e in evs),
        key=lambda t: (t[0], CONCEPT_STREAMS.index(t[1])),
    )
    alerts: list[Alert] = []
    for i in range(0, len(merged), batch):
        block = merged[i : i + batch]
        for stream in CONCEPT_STREAMS:
            events = [e for _, k, e in block if k == stream]
            if events:
                alerts.extend(eng.process_events(Stream(stream), events).alerts)
    return eng.pipelines[MODEL], alerts


def concept_replay(streams: dict[str, list[dict[str, Any]]], work: Path) -> list[Alert]:
    """``stream-monitor replay``'s path over the three streams written as JSON-lines files."""
    from stream_monitor.adapters.files.jsonl_blocks import JsonlSource
    from stream_monitor.adapters.files.replay import replay
    from stream_monitor.core.events import Stream

    sources = []
    for stream in CONCEPT_STREAMS:
        path = work / f"{stream}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in streams[stream]))
        sources.append(JsonlSource(path, Stream(stream)))
    eng = Engine(concept_config(), concept_profile().models, ManualClock(0.0))
    return replay(eng, sources).alerts


def concept_sentinels(
    streams: dict[str, list[dict[str, Any]]], n_partitions: int
) -> dict[str, list[dict[str, Any]]]:
    """One event per stream and partition past every real slice, so every source's boundary passes them."""
    ts = max(e["ts"] for evs in streams.values() for e in evs)
    ts += WINDOW["allowed_lateness_seconds"] + 2 * WINDOW["slice_seconds"]
    return {
        k: [{**evs[-1], "event_id": f"sentinel-{k}-{p}", "ts": ts} for p in range(n_partitions)]
        for k, evs in streams.items()
    }


def concept_alerts(alerts: list[Alert]) -> list[tuple[Any, ...]]:
    """Concept-drift and label-lag alerts, by what identifies them and their performance window."""
    return sorted(
        (
            a.alert_id,
            a.status.value,
            a.severity.value,
            a.kind.value,
            a.signal,
            a.window.start_ts,
            a.window.end_ts,
        )
        for a in alerts
        if a.kind.value in ("concept_drift", "label_lag")
    )


# ---- a paced producer, and the state check after a stream under faults ---------------------------------------
class Feeder(threading.Thread):
    """Produces the stream in chunks at a steady pace from a thread; ``when_produced`` acts mid-stream."""

    def __init__(
        self,
        deployment: Deployment,
        events: list[dict[str, Any]],
        n_partitions: int = 3,
        chunk: int = 500,
        every_s: float = 0.3,
    ) -> None:
        super().__init__(daemon=True)
        self.deployment, self.events = deployment, events
        self.n_partitions, self.chunk, self.every_s = n_partitions, chunk, every_s
        self.produced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(0, len(self.events), self.chunk):
                self.deployment.produce_events(self.events[i : i + self.chunk], self.n_partitions)
                self.produced = min(i + self.chunk, len(self.events))
                time.sleep(self.every_s)  # pacing the producer, not waiting for a result
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def when_produced(feeder: Feeder, fraction: float, action: Callable[[], Any]) -> Any:
    """Run ``action`` once ``fraction`` of the feeder's events were produced (and flushed)."""
    wait_for(
        lambda: feeder.produced >= fraction * len(feeder.events) or not feeder.is_alive(),
        120,
        f"{fraction:.0%} produced",
    )
    return action()


def finish_and_compare(
    d: Deployment,
    feeder: Feeder,
    events: list[dict[str, Any]],
    cfg: MonitorConfig | None = None,
    clean: list[dict[str, Any]] | None = None,
    faults: int = 0,
) -> list[Alert]:
    """Wait for the feeder, close every slice with sentinels, and check the service against a one-process
    recomputation (with ``cfg``, the deployment's config) as its runtime's guarantee promises. ``exact``: its
    final stage-2 state equals the recomputation's, and its alerts topic holds the recomputation's alerts,
    each alert id + status once. ``at_least_once`` (:mod:`tests.at_least_once`; the deployment needs the
    ``window_stats`` topic): nothing the recomputation counts, tests or raises is missing, and each stage's
    duplicates stay within :func:`duplicate_bound` for ``faults`` crashes or rebalances. The sentinels follow
    the times of ``clean`` (default ``events``: give the admitted events when some are skewed ahead). Returns
    the alerts read from the topic."""
    feeder.join(180)
    assert not feeder.is_alive(), "the feeder did not finish"
    assert feeder.error is None, feeder.error
    n_partitions = feeder.n_partitions
    sentinels = sentinel_events(clean or events, n_partitions)
    d.produce("features", [orjson.dumps(e) for e in sentinels], partitions=list(range(n_partitions)))
    if RUNTIMES[d.runtime] == "at_least_once":
        from tests.at_least_once import assert_at_least_once

        bound = duplicate_bound(d, feeder, faults)
        return assert_at_least_once(d, events + sentinels, clean or events, n_partitions, cfg, bound).alerts
    pipeline, engine_alerts = engine_run(events + sentinels, cfg=cfg)
    return compare_final_state(d, expected_boundary(clean or events), pipeline, engine_alerts, cfg)


def duplicate_bound(d: Deployment, feeder: Feeder, faults: int) -> int:
    """Events an at-least-once runtime may count twice over ``faults`` crashes or rebalances: each re-reads
    what its partitions' owner processed since its last commit (one ``service.snapshot_seconds``, the Faust
    runtime's commit interval, of the feeder's stream) and the batch it had in flight (one chunk)."""
    interval = parse_config(yaml.safe_load(d.config_path.read_text())).service.snapshot_seconds
    per_second = feeder.chunk / feeder.every_s if feeder.every_s > 0 else float(len(feeder.events))
    return faults * (math.ceil(interval * per_second) + feeder.chunk)


def compare_final_state(
    d: Deployment, boundary: int, pipeline: Any, engine_alerts: list[Alert], cfg: MonitorConfig | None = None
) -> list[Alert]:
    """Once stage 2's snapshot covers every slice below ``boundary`` (the sentinels are produced), check it
    equals ``pipeline`` (the recomputation's, with ``cfg``, the deployment's config), and the alerts topic
    holds exactly ``engine_alerts`` (each alert id + status once). Returns the alerts read from the topic."""

    def final_state() -> Any:
        for snap in d.latest_snapshots("s2|").values():
            model = snap["models"].get(MODEL)
            if model is not None and model["complete"] >= boundary:
                return snap
        return None

    snap = wait_for(final_state, 120, "stage 2's snapshot to cover every real slice")
    from stream_monitor.pipeline.assembly import build_models

    models = build_models(cfg or config(), profile().models, ManualClock(0.0))
    merge = models.merge_partition(d.topics["partials"], int(snap["source"].rsplit(":", 1)[1]), [])
    merge.restore(snap)
    assert_merger_matches(merge.mergers[MODEL], pipeline)

    emitted = d.alerts()
    counts = Counter((a.alert_id, a.status.value, a.severity.value) for a in emitted)
    assert [k for k, n in counts.items() if n > 1] == [], "an alert id + status was emitted twice"
    assert sorted(wire(emitted)) == sorted(wire(engine_alerts))
    assert any(a.signal == "num_00" for a in emitted)
    return emitted
