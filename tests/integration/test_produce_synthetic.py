"""scripts/produce_synthetic.py (the compose stack's producer) against the real broker.

It is run as the compose file runs it, with a ``--config`` naming the topics and the broker; an independent
consumer then reads every topic back, and the engine finds the drift in what was produced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from stream_monitor.app.compose import build_engine
from stream_monitor.config.loading import load_config
from stream_monitor.core.events import Stream
from tests.engine_feed import COMPOSE_CONFIG, REPO
from tests.kafka_fixtures import MakeTopic

pytestmark = pytest.mark.kafka

SCRIPT = REPO / "scripts" / "produce_synthetic.py"
TIMEOUT_S = 60.0


def _config(tmp_path: Path, bootstrap: str, make_topic: MakeTopic) -> tuple[Path, dict[str, str]]:
    raw = yaml.safe_load(COMPOSE_CONFIG.read_text())
    topics = {
        name: make_topic(f"synth-{name}", partitions=3) for name in ("features", "predictions", "labels")
    }
    raw["kafka"]["bootstrap_servers"] = bootstrap
    raw["topics"].update(topics)
    raw["models"]["churn-v3"]["reference"] = str(REPO / "config" / "reference.json")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, topics


def _consume_all(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic``, read up to the high watermark of each partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Any] = []
        deadline = time.monotonic() + TIMEOUT_S
        while sum(ends.values()) > len(out):
            assert time.monotonic() < deadline, f"read {len(out)} of {sum(ends.values())} from {topic}"
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                out.append(msg)
        return out
    finally:
        consumer.close()


def test_produces_a_consistent_drifting_stream(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path
) -> None:
    config, topics = _config(tmp_path, kafka_bootstrap, make_topic)
    n = 6000  # 2 minutes of event time at 50 events/s: the mean shift of num_00 starts at +40 s
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config), "--events", str(n), "--no-pace",
         "--drift-after", "40"],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    messages = {name: _consume_all(kafka_bootstrap, topic) for name, topic in topics.items()}
    events = {name: [orjson.loads(m.value()) for m in msgs] for name, msgs in messages.items()}
    assert len(events["features"]) == n
    assert len(events["predictions"]) == n
    assert 0.8 * n < len(events["labels"]) < n, "about 10 % of labels never come"
    for msgs in messages.values():
        assert all(m.key() == orjson.loads(m.value())["event_id"].encode() for m in msgs)
        assert len({m.partition() for m in msgs}) == 3
    ids = [e["event_id"] for e in events["features"]]
    assert len(set(ids)) == n, "event ids are unique across generated chunks"
    assert {e["event_id"] for e in events["predictions"]} == set(ids)
    assert {e["event_id"] for e in events["labels"]} <= set(ids)
    by_id = {m.key(): m.partition() for m in messages["features"]}
    assert all(by_id[m.key()] == m.partition() for m in messages["predictions"]), "co-partitioned by event id"
    assert f"produced {n} features, {n} predictions" in proc.stderr
    assert abs(events["features"][0]["ts"] - time.time()) < 120, "event time is the wall clock"

    # What went over the wire drifts as announced: the engine flags num_00.
    engine = build_engine(load_config(config))
    alerts = []
    for name in ("features", "predictions"):
        batch = sorted(events[name], key=lambda e: e["ts"])
        alerts += engine.process_events(Stream(name), batch).alerts
    alerts += engine.flush()
    assert Counter(a.signal for a in alerts if a.kind.value == "covariate_drift")["num_00"] >= 1


def test_sigterm_stops_a_paced_producer_promptly(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path
) -> None:
    config, _ = _config(tmp_path, kafka_bootstrap, make_topic)
    proc = subprocess.Popen(
        [sys.executable, "-u", str(SCRIPT), "--config", str(config), "--rate", "20"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed once the producer exists and the stream starts
        assert first.startswith("producing churn-v3 at 20 events/s"), first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
