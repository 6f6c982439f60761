"""The producer edge without a broker: a fake confluent producer stands in, so the protocol is checked exactly
(delivery callback + poll(0), BufferError -> poll and retry, failed deliveries counted and produced again, the
snapshot barrier, headers of dead letters, settings never mutated, secrets scrubbed)."""

from __future__ import annotations

from typing import Any

import pytest

from stream_monitor.adapters.kafka.clients import (
    AlertPublisher,
    DeadLetterPublisher,
    ProducerFatalError,
    Redactor,
    TrackedProducer,
    producer_settings,
    without_consumer_settings,
)
from stream_monitor.adapters.kafka.topics import topic_specs
from stream_monitor.adapters.kafka.worker import consumer_settings
from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import Alert, AlertKind, Severity, Status, WindowInfo, decode_alert
from stream_monitor.pipeline.counters import ServiceStats


class FakeError:
    def __init__(self, fatal: bool = False) -> None:
        self._fatal = fatal

    def fatal(self) -> bool:
        return self._fatal

    def name(self) -> str:
        return "_MSG_TIMED_OUT"

    def str(self) -> str:
        return "Local: Message timed out (sasl.password=hunter2)"


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class FakeProducer:
    """Queues produce calls; ``deliver`` runs their callbacks the way ``poll`` would."""

    def __init__(self, buffer_errors: int = 0) -> None:
        self.queued: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.polls: list[float] = []
        self.buffer_errors = buffer_errors

    def produce(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        if self.buffer_errors:
            self.buffer_errors -= 1
            raise BufferError("Local: Queue full")
        self.queued.append({"topic": topic, "value": value, **kwargs})

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        self.deliver()
        return 0

    def deliver(self, fail: int = 0, fatal: bool = False) -> None:
        batch, self.queued = self.queued, []
        for i, item in enumerate(batch):
            err = FakeError(fatal) if i < fail else None
            if err is None:
                self.sent.append(item)
            item["on_delivery"](err, FakeMessage(item.get("partition", 0) or 0, len(self.sent) - 1))


def make_alert(status: Status = Status.FIRING) -> Alert:
    return Alert.build(
        model_id="m",
        kind=AlertKind.COVARIATE_DRIFT,
        signal="x",
        severity=Severity.WARNING,
        status=status,
        detector="psi",
        statistic=0.2,
        threshold=0.1,
        window=WindowInfo(0, 10, 100),
        episode_start_ts=10.0,
        detected_at=11.0,
        message="x shifted",
    )


def test_produce_polls_and_retries_a_full_queue() -> None:
    fake = FakeProducer(buffer_errors=2)
    tp = TrackedProducer({}, producer=fake)
    seq = tp.produce("t", b"v", key="k")
    assert seq == 1
    assert len(fake.queued) == 1
    assert fake.polls.count(0) >= 1  # poll(0) after produce
    assert len([p for p in fake.polls if p > 0]) == 2  # one poll per BufferError
    assert fake.queued[0]["key"] == b"k"


def test_barrier_and_failed_deliveries_are_retried_and_counted() -> None:
    fake = FakeProducer()
    stats = ServiceStats()
    tp = TrackedProducer({}, producer=fake)
    alerts = AlertPublisher(tp, "alerts", stats)
    alerts.publish([make_alert(), make_alert(Status.RESOLVED)])
    assert not tp.delivered_through(2)
    fake.deliver(fail=1)  # the first delivery fails: counted and produced again
    assert tp.delivery_failures == 1
    assert stats.snapshot().alert_delivery_failures == 1
    assert tp.delivered_through(1) is False
    assert tp.delivered_through(0)
    fake.deliver()
    assert tp.delivered_through(2)
    assert [decode_alert(m["value"]).status for m in fake.sent] == [Status.RESOLVED, Status.FIRING]
    assert {m["key"] for m in fake.sent} == {b"m"}  # key = model_id
    assert alerts.delivered_offsets == {0: 2}


def test_a_fatal_error_stops_the_producer_without_leaking_secrets() -> None:
    fake = FakeProducer()
    tp = TrackedProducer({}, Redactor(["hunter2"]), producer=fake)
    tp.produce("t", b"v")
    fake.deliver(fail=1, fatal=True)
    with pytest.raises(ProducerFatalError) as info:
        tp.poll(0)
    assert "hunter2" not in str(info.value)


def test_dead_letters_keep_the_bytes_and_carry_the_headers() -> None:
    fake = FakeProducer()
    dlq = DeadLetterPublisher(TrackedProducer({}, producer=fake), "dlq", Redactor(["s3cret!"]))
    dlq.send(
        b"\xff raw", b"key", "not_json", "bad s3cret! here", "features", 2, 41, [("trace", b"1")], now=5.0
    )
    item = fake.queued[0]
    assert (item["value"], item["key"]) == (b"\xff raw", b"key")
    headers = dict(item["headers"])
    assert headers == {
        "reason": b"not_json",
        "detail": b"bad *** here",
        "source_topic": b"features",
        "source_partition": b"2",
        "source_offset": b"41",
        "time": b"5000",
        "trace": b"1",
    }


def test_settings_are_copied_and_the_required_ones_win() -> None:
    user = {
        "bootstrap.servers": "b:9092",
        "acks": "1",
        "security.protocol": "SASL_SSL",
        "sasl.password": "p",
        "session.timeout.ms": 6000,
    }
    before = dict(user)
    out = producer_settings(user)
    assert user == before
    assert out["enable.idempotence"] is True
    assert out["acks"] == "all"
    assert out["partitioner"] == "murmur2_random"
    assert out["security.protocol"] == "SASL_SSL"
    assert out["sasl.password"] == "p"
    assert "session.timeout.ms" not in out
    assert without_consumer_settings(user) is not user


def test_the_consumer_prefetches_about_one_batch_unless_told_otherwise() -> None:
    """librdkafka's default queue (100k messages) held a whole 100k backlog at once: 50 MiB of 170-byte
    events. The worker's holds one batch, and a kafka.client setting still wins over that default."""
    user = {"bootstrap.servers": "b:9092", "enable.auto.commit": True}
    before = dict(user)
    out = consumer_settings(user, "sm", batch_max_events=5000)
    assert user == before
    assert (out["queued.min.messages"], out["fetch.queue.backoff.ms"]) == (5000, 10)
    assert (out["group.id"], out["enable.auto.commit"]) == ("sm", False)
    tuned = consumer_settings({**user, "queued.min.messages": 50_000}, "sm", batch_max_events=5000)
    assert tuned["queued.min.messages"] == 50_000


def test_topic_specs_cover_every_topic_the_config_names() -> None:
    cfg = parse_config(
        {"models": {"m": {"reference": "r.json"}}, "topics": {"retraining": "retrain", "partitions": 4}}
    )
    specs = {s.name: s for s in topic_specs(cfg)}
    t = cfg.topics
    assert set(specs) == {
        t.features,
        t.predictions,
        t.labels,
        t.features_batch,
        t.alerts,
        t.dlq,
        t.partials,
        t.state,
        "retrain",
    }
    assert specs[t.state].config["cleanup.policy"] == "compact"
    assert all(s.partitions == 4 for s in specs.values())


def test_a_consumed_batch_is_split_into_runs_per_topic_and_partition_in_order() -> None:
    from confluent_kafka import Message

    from stream_monitor.adapters.kafka.worker_batches import _runs

    layout = [("f", 0), ("f", 0), ("f", 1), ("p", 1), ("f", 0), ("f", 0), ("p", 1), ("f", 3)]
    batch = [Message(topic=t, partition=p, offset=i, value=b"") for i, (t, p) in enumerate(layout)]
    runs = {key: [m.offset() for m in group] for key, group in _runs(batch)}
    assert runs == {("f", 0): [0, 1, 4, 5], ("f", 1): [2], ("p", 1): [3, 6], ("f", 3): [7]}
    assert _runs([]) == []
    one = [Message(topic="f", partition=2, offset=i, value=b"") for i in range(3)]
    assert [(k, [m.offset() for m in g]) for k, g in _runs(one)] == [(("f", 2), [0, 1, 2])]
