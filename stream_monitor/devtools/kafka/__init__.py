"""A real Apache Kafka broker for development, tests, CI and ``stream-monitor demo``, without Docker.

See :mod:`stream_monitor.devtools.kafka.broker`; the command line is ``python -m stream_monitor.devtools.kafka``
(or ``scripts/kafka_local.py``).
"""

from stream_monitor.devtools.kafka.borrowed import kafka_bootstrap
from stream_monitor.devtools.kafka.broker import LocalBroker
from stream_monitor.devtools.kafka.errors import DevKafkaError
from stream_monitor.devtools.kafka.jars import ensure_jars
from stream_monitor.devtools.kafka.locations import DEFAULT_KAFKA_VERSION, cache_dir
from stream_monitor.devtools.kafka.probe import broker_ready
from stream_monitor.devtools.kafka.processes import running_brokers, stop_broker

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DevKafkaError",
    "LocalBroker",
    "broker_ready",
    "cache_dir",
    "ensure_jars",
    "kafka_bootstrap",
    "running_brokers",
    "stop_broker",
]
