"""Produce a live, drifting synthetic model stream to Kafka: feature, prediction and label events.

The compose stack's producer (``docker-compose.yml``) and anyone trying the monitor against a broker::

    python scripts/produce_synthetic.py --config config/stream-monitor.yaml --rate 50 --drift-after 60

Events are those of :mod:`stream_monitor.devtools.synthetic` for the model ``churn-v3`` (the world of ``examples/`` and
``config/reference.json``), with event times from the wall clock at the start, paced at ``--rate`` feature
events per second; each prediction follows its feature event by ~15 ms and most labels follow after an
exponential delay (``--label-delay`` seconds). By default three changes start ``--drift-after`` seconds in,
two minutes apart: ``num_00`` shifts by 0.75 sd, 20 % of ``cat_00`` takes an unseen category, and the
model's scores move by +1.0 on the logit. ``--drift`` (repeatable, the syntax of ``synth_stream.py``) replaces
them; ``--drift none`` sends a stable stream.

Topics and client settings (bootstrap servers, SASL/TLS passed through unchanged) come from ``--config``;
``--bootstrap-servers`` overrides the address. Messages are keyed by ``event_id``, so an event's prediction
and label land on the same partition number. The producer is idempotent, polls after every message, retries on
``BufferError`` and flushes once, at the end; delivery failures are counted and make the exit code 1.
Runs until ``--events`` feature events are sent, or until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    from stream_monitor.devtools import synthetic, synthetic_jsonl, synthetic_spec
except ModuleNotFoundError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stream_monitor.devtools import synthetic, synthetic_jsonl, synthetic_spec

from stream_monitor.config.loading import load_config
from stream_monitor.config.schema import MonitorConfig, TopicsConfig

CHUNK_SECONDS = 10.0
STREAMS = ("features", "predictions", "labels")


def default_drifts(start_ts: float, after: float) -> list[synthetic_spec.Drift]:
    """The demo's three changes: a mean shift, a new category, a score shift, two minutes apart."""
    return [
        synthetic_spec.Drift("mean_shift", "num_00", start_ts=start_ts + after, magnitude=0.75),
        synthetic_spec.Drift("new_category", "cat_00", start_ts=start_ts + after + 120.0, magnitude=0.2),
        synthetic_spec.Drift("score_shift", None, start_ts=start_ts + after + 240.0, magnitude=1.0),
    ]


def timeline(
    spec: synthetic_spec.StreamSpec, drifts: list[synthetic_spec.Drift], n_events: int | None, run_id: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(stream, event)`` in event-time order, generated in chunks of about ``CHUNK_SECONDS``.

    Each chunk is a fresh :func:`synthetic.generate` call (its own seed, starting where the last one ended),
    so memory stays bounded however long the stream runs. Event ids get a run and chunk prefix so they stay
    unique. Labels of one chunk that fall after the next chunk's first events are merged in time order.
    """
    per_chunk = max(1, int(spec.events_per_second * CHUNK_SECONDS))
    heap: list[tuple[float, int, str, dict[str, Any]]] = []
    seq = 0
    primary = 0  # features and predictions in the heap: the next chunk is generated when they run out
    sent = 0
    start, chunk = spec.start_ts, 0
    while True:
        if primary == 0 and (n_events is None or sent < n_events):
            n = per_chunk if n_events is None else min(per_chunk, n_events - sent)
            part = synthetic.generate(replace(spec, start_ts=start, seed=spec.seed + chunk), n, drifts)
            prefix = f"{run_id}-{chunk:06d}-"
            for stream, events in zip(STREAMS, (part.features, part.predictions, part.labels), strict=True):
                for event in events:
                    event["event_id"] = prefix + event["event_id"]
                    heapq.heappush(heap, (float(event["ts"]), seq, stream, event))
                    seq += 1
                    primary += stream != "labels"
            sent += n
            start = float(part.timestamps()[-1]) + 1.0 / spec.events_per_second
            chunk += 1
        if not heap:
            return
        _, _, stream, event = heapq.heappop(heap)
        primary -= stream != "labels"
        yield stream, event


@dataclass
class Counts:
    produced: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    delivered: int = 0
    failed: int = 0
    first_error: str = ""


def produce(
    producer: Any,
    events: Iterator[tuple[str, dict[str, Any]]],
    topics: TopicsConfig,
    *,
    t0_event: float,
    speed: float | None,
    stop: list[bool],
    report_every: float = 10.0,
) -> Counts:
    """Produce ``events`` to their topics, paced so that event time ``t0_event + x`` goes out ``x / speed``
    seconds after the start (``speed=None``: as fast as the client takes them); returns the counts."""
    counts = Counts()
    topic_of = {"features": topics.features, "predictions": topics.predictions, "labels": topics.labels}

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            counts.delivered += 1
        else:
            counts.failed += 1
            counts.first_error = counts.first_error or str(err)

    t0 = time.monotonic()
    next_report = t0 + report_every
    for stream, event in events:
        if stop[0]:
            break
        if speed is not None:
            while not stop[0]:
                delay = (float(event["ts"]) - t0_event) / speed - (time.monotonic() - t0)
                if delay <= 0:
                    break
                producer.poll(min(delay, 0.5))  # serve delivery callbacks while waiting
        value = synthetic_jsonl.encode(event)
        key = str(event["event_id"]).encode()
        while True:
            try:
                producer.produce(topic_of[stream], value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
        counts.produced[stream] += 1
        if time.monotonic() >= next_report:
            _report(counts)
            next_report += report_every
    return counts


def _report(counts: Counts) -> None:
    sent = ", ".join(f"{n} {s}" for s, n in counts.produced.items())
    print(
        f"produced {sent}; {counts.delivered} delivered, {counts.failed} failed", file=sys.stderr, flush=True
    )


def client_settings(config: MonitorConfig | None, bootstrap: str | None) -> dict[str, Any]:
    """Producer settings: the config's client settings (secrets included, never printed), then ours."""
    settings: dict[str, Any] = config.kafka.client_settings() if config is not None else {}
    if bootstrap:
        settings["bootstrap.servers"] = bootstrap
    settings.setdefault("bootstrap.servers", "127.0.0.1:9092")
    settings["enable.idempotence"] = True
    settings.setdefault("linger.ms", 20)
    settings.setdefault("partitioner", "murmur2_random")  # the Java clients' partitioner
    return settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="stream-monitor config: topics and Kafka client settings")
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers of --config")
    p.add_argument("--rate", type=float, default=50.0, help="feature events per second (%(default)s)")
    p.add_argument(
        "--events", type=int, help="stop after this many feature events (default: run until stopped)"
    )
    p.add_argument(
        "--drift-after", type=float, default=60.0, help="seconds before the first drift (%(default)s)"
    )
    p.add_argument(
        "--drift", action="append", default=[], help="replace the default drifts; 'none': no drift"
    )
    p.add_argument("--label-delay", type=float, default=30.0, help="mean label delay, seconds (%(default)s)")
    p.add_argument("--model-id", default="churn-v3", help="model_id of every event (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the events (%(default)s)")
    p.add_argument(
        "--no-pace", action="store_true", help="produce as fast as possible (event times still at --rate)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import Producer

    parser = build_parser()
    args = parser.parse_args(argv)
    config = load_config(args.config) if args.config else None
    topics = config.topics if config is not None else TopicsConfig()
    start_ts = round(time.time(), 3)
    try:
        spec = synthetic_spec.StreamSpec(
            model_id=args.model_id,
            events_per_second=args.rate,
            start_ts=start_ts,
            label_delay_mean_s=args.label_delay,
            seed=args.seed,
        )
        if args.drift == ["none"]:
            drifts: list[synthetic_spec.Drift] = []
        elif args.drift:
            drifts = [synthetic_spec.parse_drift(text, start_ts) for text in args.drift]
        else:
            drifts = default_drifts(start_ts, args.drift_after)
    except ValueError as exc:
        parser.error(str(exc))
    if args.events is not None and args.events < 1:
        parser.error("--events must be >= 1")

    stop = [False]

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    producer = Producer(client_settings(config, args.bootstrap_servers))
    changes = ", ".join(f"{d.kind} {d.feature or ''} at +{d.start_ts - start_ts:.0f} s" for d in drifts)
    print(
        f"producing {args.model_id} at {args.rate:g} events/s; drifts: {changes or 'none'}", file=sys.stderr
    )
    events = timeline(spec, drifts, args.events, run_id=f"r{int(start_ts)}")
    counts = produce(
        producer, events, topics, t0_event=start_ts, speed=None if args.no_pace else 1.0, stop=stop
    )
    remaining = producer.flush(30.0)
    _report(counts)
    if counts.failed or remaining:
        print(
            f"error: {counts.failed} failed, {remaining} undelivered: {counts.first_error}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
