"""The development broker is a real Kafka: two independent clients (librdkafka through confluent-kafka,
and kcat) see the same partitioned, keyed messages, and consumer groups work."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from stream_monitor.devtools.kafka import DevKafkaError, LocalBroker, ensure_jars
from stream_monitor.devtools.kafka import broker as broker_module
from stream_monitor.devtools.kafka.probe import broker_ready
from tests.kafka_fixtures import MakeTopic

pytestmark = pytest.mark.kafka

N_MESSAGES = 100
TIMEOUT_S = 60.0


def _produce(bootstrap: str, topic: str, records: dict[str, str]) -> list[Message]:
    """Produce with a delivery callback and poll(0) per message; flush once at the end."""
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records.items():
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0, "messages still in flight after flush"
    assert not errors
    return delivered


def test_produce_and_consume_with_a_group(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    topic = make_topic("local-broker", partitions=3)
    records = {f"key-{i:03d}": f"value-{i}" for i in range(N_MESSAGES)}

    delivered = _produce(kafka_bootstrap, topic, records)
    assert len(delivered) == N_MESSAGES
    assert {m.partition() for m in delivered} == {0, 1, 2}, "100 keys should spread over 3 partitions"

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"test-local-broker-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumed: dict[str, str] = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while len(consumed) < N_MESSAGES and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=N_MESSAGES, timeout=0.2):
                assert msg.error() is None, msg.error()
                consumed[msg.key().decode()] = msg.value().decode()
        consumer.commit(asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=10)
    finally:
        consumer.close()

    assert consumed == records
    assert sum(tp.offset for tp in committed) == N_MESSAGES, "the group committed every offset"


def test_kcat_reads_what_confluent_kafka_wrote(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    kcat = shutil.which("kcat")
    assert kcat is not None, "kcat is missing: run `bash scripts/ci_setup.sh`"
    topic = make_topic("local-broker-kcat", partitions=3)
    records = {f"key-{i:03d}": f"value-{i}" for i in range(N_MESSAGES)}
    _produce(kafka_bootstrap, topic, records)

    out = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-f", "%k %s\n"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    ).stdout
    read = dict(line.split(" ", 1) for line in out.splitlines())
    assert read == records


def test_the_raw_protocol_probe_sees_a_ready_broker(kafka_bootstrap: str) -> None:
    assert broker_ready(kafka_bootstrap)
    assert not broker_ready("127.0.0.1:1", timeout=0.5)


def test_ensure_jars_fetches_into_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI starts from a fresh clone: the fetch must work from nothing and mark itself complete."""
    monkeypatch.setenv("STREAM_MONITOR_CACHE_DIR", str(tmp_path))
    libs = ensure_jars()
    assert libs == tmp_path / "kafka-4.1.1" / "libs"
    assert (libs / "kafka_2.13-4.1.1.jar").is_file()
    assert (libs / "log4j-slf4j-impl-2.24.3.jar").is_file(), "a logging backend, or Kafka logs nothing"
    assert (tmp_path / "kafka-4.1.1" / "libs.complete").is_file()
    assert ensure_jars() == libs  # the second call is a no-op


def test_a_busy_port_is_reported_before_any_jvm_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(DevKafkaError, match="in use"):
            LocalBroker().start(port=taken.getsockname()[1])


def test_a_free_port_taken_meanwhile_is_retried_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """port=0 races with every other process on the machine; losing the race once must not fail a run."""
    real_free_ports = broker_module._free_ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        stale = iter([[busy, real_free_ports(1)[0]]])  # the first pick is already taken
        monkeypatch.setattr(broker_module, "_free_ports", lambda n: next(stale, None) or real_free_ports(n))
        with LocalBroker(die_with_parent=True).start() as broker:
            assert broker.port != busy
            assert broker_ready(broker.bootstrap_servers)


def test_a_broker_that_cannot_start_shows_its_log() -> None:
    broker = LocalBroker(extra_properties={"num.io.threads": "not-a-number"})
    with pytest.raises(DevKafkaError, match=r"num\.io\.threads"):
        broker.start()
    assert not broker.is_running()


def test_a_kept_data_dir_survives_a_restart_and_a_bad_config_shows_the_log(tmp_path: Path) -> None:
    """The demo keeps its topics across restarts; a broker that dies while starting explains itself."""
    data = tmp_path / "data"
    with LocalBroker(die_with_parent=True).start(data_dir=data) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("kept", num_partitions=2)])["kept"].result(timeout=TIMEOUT_S)
    # The restart gets new ports, the controller's included: the quorum config must not pin them.
    with LocalBroker(die_with_parent=True).start(data_dir=data) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        assert len(admin.list_topics("kept", timeout=TIMEOUT_S).topics["kept"].partitions) == 2
    assert data.is_dir(), "a given data_dir is kept"

    # Storage is already formatted, so this config error surfaces only in the broker process itself.
    broken = LocalBroker(die_with_parent=True, extra_properties={"node.id": "2"})
    with pytest.raises(DevKafkaError, match=r"exited with code 1[\s\S]*node id 2 must be") as failure:
        broken.start(data_dir=data)
    assert "server.log" in str(failure.value)
    assert not broken.is_running()
