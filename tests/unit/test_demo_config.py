"""The Kafka demo's config: every topic and the consumer group carry the run's suffix, so a second demo on a
reused broker never restores the first one's state (the template's trailing comments once hid two topics)."""

from __future__ import annotations

from pathlib import Path

from stream_monitor.app.demo_kafka import _write_config
from stream_monitor.config.loading import load_config


def test_every_topic_and_the_group_are_the_runs_own(tmp_path: Path) -> None:
    config = load_config(_write_config(tmp_path, "127.0.0.1:9999", 1234, "run7"))
    topics = {k: v for k, v in config.topics.model_dump().items() if isinstance(v, str)}
    assert {"features", "predictions", "labels", "alerts", "dlq", "partials", "state"} <= set(topics)
    assert all(v.endswith("-run7") for v in topics.values()), topics
    assert config.service.consumer_group.endswith("-run7")
    assert config.kafka.bootstrap_servers == "127.0.0.1:9999"
    assert config.service.metrics_port == 1234
