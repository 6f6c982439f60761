"""Shared fixtures. Kafka ones live in tests/kafka_fixtures.py (fixture names: kafka_bootstrap,
kafka_admin, make_topic); add other groups the same way: a module, imported here."""

from tests.kafka_fixtures import kafka_admin, kafka_bootstrap, make_topic

__all__ = ["kafka_admin", "kafka_bootstrap", "make_topic"]
