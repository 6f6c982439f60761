"""Kafka fixtures: one real broker per test session, an admin client, and a topic factory.

Set ``KAFKA_BOOTSTRAP_SERVERS`` to use a broker you already run (``scripts/kafka_local.py start``); otherwise
the session starts its own on a free port and stops it at the end. Tests using these carry
``@pytest.mark.kafka``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream_monitor.devtools.kafka import kafka_bootstrap as borrowed_broker

TOPIC_READY_TIMEOUT_S = 30.0

MakeTopic = Callable[..., str]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of a real broker: ``$KAFKA_BOOTSTRAP_SERVERS``, else one started here."""
    with borrowed_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(kafka_admin: AdminClient) -> MakeTopic:
    """``make_topic(name, partitions=1, config=None) -> str``: create ``<name>-<uuid>`` and wait for it.

    Unique names keep tests independent on a shared broker, without deleting anything between tests.
    Returns once every partition has a leader, so producing to it right away cannot fail.
    """

    def make(name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        topic = f"{name}-{uuid.uuid4().hex[:12]}"
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        kafka_admin.create_topics([new], operation_timeout=TOPIC_READY_TIMEOUT_S)[topic].result(
            timeout=TOPIC_READY_TIMEOUT_S
        )
        deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
        while True:
            meta = kafka_admin.list_topics(topic, timeout=5).topics.get(topic)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return topic
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} not ready after {TOPIC_READY_TIMEOUT_S} s: {meta}")
            time.sleep(0.05)  # metadata propagation has no notification to wait on

    return make
