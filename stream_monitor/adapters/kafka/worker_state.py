"""What the Kafka worker holds, declared once for the parts it is made of.

The worker is one object, written as a stack of parts by job: :class:`WorkerParts` (its clients and its
assigned partitions), the batches (``worker_batches.py``), the snapshot cycle (``worker_snapshots.py``) and the
rebalances (``worker_rebalance.py``). ``Worker.__init__`` (``worker.py``) builds every attribute declared here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from stream_monitor.adapters.kafka.clients import (
    AlertPublisher,
    DeadLetterPublisher,
    Redactor,
    TrackedProducer,
)
from stream_monitor.adapters.kafka.faults import KafkaWatch
from stream_monitor.adapters.kafka.state_store import StateStore, TopicReader
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import ServiceModels
from stream_monitor.pipeline.counters import ServiceStats
from stream_monitor.pipeline.merge_partition import MergePartition
from stream_monitor.pipeline.partials import Partial, encode_partial
from stream_monitor.pipeline.partition_fold import PartitionFolder

# One logger for all the worker's parts, named as it was when they were one module.
log = logging.getLogger("stream_monitor.adapters.kafka.worker")


@dataclass
class _Owned:
    """One assigned partition: its stage object and snapshot bookkeeping."""

    tp: TopicPartition
    stage: PartitionFolder | MergePartition
    key: str
    last_snapshot: float
    last_message: float = 0.0
    failed: bool = False
    pending: bool = False  # a snapshot of it is waiting for its barrier or its acknowledgement


@dataclass
class _PendingSnapshot:
    owned: _Owned
    payload: bytes
    next_offset: int
    barrier: int
    produced: bool = False


class WorkerParts:
    """The worker's clients, configuration and assigned partitions (attributes set by ``Worker.__init__``)."""

    config: MonitorConfig
    models: ServiceModels
    stats: ServiceStats
    fault_after_batches: int | None
    redactor: Redactor
    watch: KafkaWatch
    input_streams: dict[str, Stream]
    producer: TrackedProducer
    alerts: AlertPublisher
    dlq: DeadLetterPublisher
    reader: TopicReader
    store: StateStore
    sources: list[str]
    label_sources: list[str]
    consumer: Consumer
    owned: dict[tuple[str, int], _Owned]
    pending: list[_PendingSnapshot]
    to_commit: dict[tuple[str, int], TopicPartition]
    batches: int
    max_poll_s: float  # the consumer's max.poll.interval.ms, in seconds
    polled_at: float  # monotonic time consume() last returned
    _cooperative: bool
    _closing: bool
    _stop: threading.Event
    _last_lag: float

    def _publish_partial(self, partial: Partial) -> None:
        self.producer.produce(self.config.topics.partials, encode_partial(partial), key=partial.model)
