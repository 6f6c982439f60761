"""The worker's batch handler when a batch is slow or carries a consumer error, without a broker: a batch that
outlives ``max.poll.interval.ms`` stops at the next partition and seeks the rest back, and a consumer error
event in a batch (librdkafka's ``_MAX_POLL_EXCEEDED`` after such a batch) is logged, not a crash."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from stream_monitor.adapters.kafka.clients import Redactor
from stream_monitor.adapters.kafka.worker_batches import PartitionBatches
from stream_monitor.adapters.kafka.worker_state import _Owned
from stream_monitor.pipeline.counters import ServiceStats


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def pause(self, partitions: list[TopicPartition]) -> None:
        raise AssertionError(f"nothing should fail here: {partitions}")


class Handler(PartitionBatches):
    """The batch handler over two owned partitions; its stage records what it was given."""

    def __init__(self, slow_partition: int | None = None) -> None:
        self.owned = {
            ("in", p): _Owned(TopicPartition("in", p), object(), f"s2|in|{p}", 0.0)  # type: ignore[arg-type]
            for p in (0, 1)
        }
        self.stats = ServiceStats()
        self.redactor = Redactor([])
        self.consumer = FakeConsumer()  # type: ignore[assignment]
        self.batches = 0
        self.fault_after_batches = None
        self.max_poll_s = 10.0
        self.polled_at = time.monotonic()
        self.slow_partition = slow_partition
        self.handled: list[tuple[int, list[int]]] = []

    def _stage2(self, merge: Any, group: Sequence[Message]) -> None:
        partition = group[0].partition()
        self.handled.append((partition, [m.offset() for m in group]))
        if partition == self.slow_partition:
            self.polled_at -= 2 * self.max_poll_s  # this partition's run took twice the poll interval


def _batch(layout: list[tuple[int, int]]) -> list[Message]:
    return [Message(topic="in", partition=p, offset=o, value=b"x") for p, o in layout]


def test_a_batch_within_the_poll_interval_is_handled_whole() -> None:
    h = Handler()
    h._handle(_batch([(0, 5), (0, 6), (1, 9)]))
    assert h.handled == [(0, [5, 6]), (1, [9])]
    assert h.consumer.seeks == []  # type: ignore[attr-defined]
    assert not h._poll_overdue()


def test_a_batch_that_outlives_the_poll_interval_leaves_the_rest_sought_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Handler(slow_partition=0)
    with caplog.at_level(logging.WARNING):
        h._handle(_batch([(0, 5), (0, 6), (1, 9), (1, 10)]))
    assert h.handled == [(0, [5, 6])]  # partition 1's run is left for its next owner
    assert h.consumer.seeks == [("in", 1, 9)]  # type: ignore[attr-defined]
    assert h._poll_overdue()
    assert "more than max.poll.interval.ms" in caplog.text
    assert "2 message(s)" in caplog.text


def test_a_consumer_error_in_a_batch_is_logged_and_the_rest_handled(caplog: pytest.LogCaptureFixture) -> None:
    h = Handler()
    error = Message(
        topic="in", partition=-1, error=KafkaError(KafkaError._MAX_POLL_EXCEEDED, "poll interval exceeded")
    )
    with caplog.at_level(logging.WARNING):
        h._handle([error, *_batch([(0, 5), (1, 9)])])
    assert h.handled == [(0, [5]), (1, [9])]
    assert "consumer error: poll interval exceeded" in caplog.text


def test_a_partition_that_left_has_no_lag_gauge_here() -> None:
    stats = ServiceStats()
    stats.set_lag("in", 0, 120)
    stats.set_lag("in", 1, 0)
    stats.forget_lag("in", 0)
    stats.forget_lag("in", 7)  # never owned: nothing to forget
    assert stats.snapshot().consumer_lag == {("in", 1): 0}
