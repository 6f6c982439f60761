"""State snapshots in the compacted state topic, and reading a topic's tail on assignment.

A snapshot's key names what it covers (``s1|features|2``: stage 1 of input partition 2 of ``features``;
``s2|stream-monitor-partials|0``: stage 2 of partials partition 0). The key picks the state partition by a
stable hash (CRC-32) here, not by the client's partitioner: only this module writes and reads the topic.

Finding the newest snapshot quickly: once a snapshot is acknowledged, the worker commits the covered input
offset to the consumer group with the snapshot's position as the commit's metadata
(``sm1:<partition>:<offset>``).
On assignment the store reads the state partition from that position to its end and keeps the last record of
the
key (a newer one may exist if the worker died between the snapshot and the commit: it is just as consistent).
Without a pointer it reads the partition from its start, which compaction keeps short.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, TopicPartition

from stream_monitor.adapters.kafka.clients import DeliveryHook, TrackedProducer

log = logging.getLogger(__name__)

POINTER_PREFIX: Final = "sm1:"
READ_TIMEOUT_S: Final = 60.0


def stage1_key(topic: str, partition: int) -> str:
    return f"s1|{topic}|{partition}"


def stage2_key(topic: str, partition: int) -> str:
    return f"s2|{topic}|{partition}"


def pointer(partition: int, offset: int) -> str:
    """Commit metadata naming where a snapshot lives in the state topic.

    >>> parse_pointer(pointer(2, 1234))
    (2, 1234)
    >>> parse_pointer("junk") is None
    True
    """
    return f"{POINTER_PREFIX}{partition}:{offset}"


def parse_pointer(metadata: str | None) -> tuple[int, int] | None:
    if not metadata or not metadata.startswith(POINTER_PREFIX):
        return None
    try:
        partition, offset = metadata[len(POINTER_PREFIX) :].split(":")
        return int(partition), int(offset)
    except ValueError:
        return None


class TopicReader:
    """A group-less consumer that reads chosen partitions from chosen offsets up to their current end."""

    def __init__(self, client_settings: Mapping[str, Any], group: str) -> None:
        settings = dict(client_settings)
        settings.update(
            {
                "group.id": group,  # required by the client; this consumer never joins the group nor commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer = Consumer(settings)

    def partitions(self, topic: str, timeout: float = 10.0) -> int:
        """Partition count of ``topic``; 0 if it does not exist."""
        meta = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return len(meta.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
        return int(low), int(high)

    def read(
        self, topic: str, starts: Mapping[int, int]
    ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
        """Yield (partition, offset, key, value) from each start offset to the end seen when called."""
        todo = {}
        for partition, start in starts.items():
            low, high = self.watermarks(topic, partition)
            begin = max(start, low)
            if begin < high:
                todo[partition] = (begin, high)
        if not todo:
            return
        self._consumer.assign([TopicPartition(topic, p, b) for p, (b, _) in todo.items()])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while todo:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} did not reach its end within {READ_TIMEOUT_S:.0f} s")
                for msg in self._consumer.consume(num_messages=1000, timeout=0.5):
                    p = msg.partition()
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF and p is not None:
                            todo.pop(p, None)
                        continue
                    offset = msg.offset()
                    if p is None or offset is None or p not in todo:
                        continue
                    yield p, offset, msg.key(), msg.value()
                    if offset >= todo[p][1] - 1:
                        todo.pop(p, None)
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


class StateStore:
    """Writes snapshots through the service's producer; reads the newest ones back on assignment."""

    def __init__(self, reader: TopicReader, producer: TrackedProducer, topic: str) -> None:
        self.reader = reader
        self.producer = producer
        self.topic = topic
        self.n_partitions = reader.partitions(topic)
        if self.n_partitions == 0:
            raise LookupError(f"state topic {topic!r} does not exist")

    def partition_for(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.n_partitions

    def save(self, key: str, payload: bytes, on_delivered: DeliveryHook) -> int:
        return self.producer.produce(
            self.topic, payload, key=key, partition=self.partition_for(key), on_delivered=on_delivered
        )

    def load(self, wanted: Mapping[str, tuple[int, int] | None]) -> dict[str, bytes]:
        """Newest snapshot of each wanted key; a key maps to its commit pointer (or None: read from the
        start)."""
        starts: dict[int, int] = {}
        for key, hint in wanted.items():
            partition = self.partition_for(key)
            start = hint[1] if hint is not None and hint[0] == partition else 0
            starts[partition] = min(starts.get(partition, start), start)
        found: dict[str, bytes] = {}
        keys = {k.encode(): k for k in wanted}
        for _, _, raw_key, value in self.reader.read(self.topic, starts):
            name = keys.get(raw_key or b"")
            if name is not None and value:
                found[name] = value
        return found
