"""``stream-monitor alerts tail``: the alerts topic at an operator's terminal, printed as the demo prints it.

A consumer of its own (a fresh group id, nothing committed) reads the alerts topic from its end, or from the
beginning, decodes every event with the alert schema, filters by model and kind, and prints one line per alert
(or the event's JSON). It stops on Ctrl-C, after ``max_alerts`` alerts, or when nothing arrived for
``idle_seconds``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import Alert, decode_alert, format_alert


def _matches(alert: Alert, models: tuple[str, ...], kinds: tuple[str, ...]) -> bool:
    return (not models or alert.model_id in models) and (not kinds or alert.kind.value in kinds)


def tail_alerts(
    config: MonitorConfig,
    echo: Callable[[str], None],
    models: tuple[str, ...] = (),
    kinds: tuple[str, ...] = (),
    from_beginning: bool = False,
    as_json: bool = False,
    max_alerts: int | None = None,
    idle_seconds: float | None = None,
) -> int:
    """Print the alerts; returns how many were printed.

    Raises
    ------
    confluent_kafka.KafkaException
        If the alerts topic cannot be read (it does not exist, the broker refuses us).
    """
    settings: dict[str, Any] = {
        **config.kafka.client_settings(),
        "group.id": f"stream-monitor-alerts-tail-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
    }
    consumer = Consumer(settings)
    topic = config.topics.alerts
    try:
        meta = consumer.list_topics(topic, timeout=10)
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaException(
                f"the alerts topic {topic!r} does not exist (run `stream-monitor topics create`)"
            )
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(found.partitions)])
        printed = 0
        last = time.monotonic()
        while max_alerts is None or printed < max_alerts:
            if idle_seconds is not None and time.monotonic() - last > idle_seconds:
                break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            last = time.monotonic()
            value = msg.value()
            try:
                alert = decode_alert(value or b"")
            except ValueError as exc:
                echo(f"(an undecodable event at {topic}[{msg.partition()}]@{msg.offset()}: {exc})")
                continue
            if not _matches(alert, models, kinds):
                continue
            echo((value or b"").decode("utf-8") if as_json else format_alert(alert))
            printed += 1
        return printed
    finally:
        consumer.close()
