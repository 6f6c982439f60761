"""A real Apache Kafka broker for development, tests, CI and ``stream-monitor demo``, without Docker.

See :mod:`stream_monitor.devtools.kafka.broker`; the command line is ``python -m stream_monitor.devtools.kafka``
(or ``scripts/kafka_local.py``).
"""

from stream_monitor.devtools.kafka.broker import (
    DEFAULT_KAFKA_VERSION,
    DevKafkaError,
    LocalBroker,
    broker_ready,
    cache_dir,
    ensure_jars,
    running_brokers,
    stop_broker,
)

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DevKafkaError",
    "LocalBroker",
    "broker_ready",
    "cache_dir",
    "ensure_jars",
    "running_brokers",
    "stop_broker",
]
