"""The worker loop: one confluent-kafka consumer drives stage 1 and stage 2; one idempotent producer writes.

Why a confluent-kafka loop and not Faust agents on the hot path (measured and argued in
``adapters/faust/app.py`` and ``scripts/bench_service.py``): exactness needs the state and the input offsets
it covers to move together, which Faust 0.15's at-least-once tables and ack-on-exception agents do not give,
and ``getmany``-style batches are what make 100k events/s per worker conceivable at all.

Per batch (``consume(batch_max_events)``), messages are grouped by partition, handed to the partition's stage
object (:class:`PartitionFolder` for input topics, :class:`MergePartition` for the partials topic), and what
comes back is produced: partials, dead letters, alerts. Nothing is committed per batch. Instead, on a timer
per partition (``service.snapshot_seconds``) the stage object is snapshotted at a batch boundary, and:

1. the snapshot waits until every message produced before it is acknowledged (the *barrier*), so it can never
   cover output that might still be lost;
2. it is written to the compacted state topic;
3. once acknowledged, the covered input offset is committed with a pointer to the snapshot as metadata.

On assignment (cooperative-sticky rebalancing: only moved partitions) the newest snapshot is restored and the
consumer seeks to the offset it covers; anything re-read below it is skipped by the stage object. Stage 2 also
reads the alerts topic's tail since its snapshot, so alerts a dead worker emitted after that snapshot are not
emitted again when the replay re-detects them. On revocation and shutdown, a final snapshot is written
synchronously (flush is only used there: it is a handoff).

A failure inside a partition's processing never escapes the loop: the partition is paused, its state is
neither snapshotted nor committed (its last good snapshot stands, so another worker, or this one after a
restart, resumes exactly), the agent is reported down on ``/readyz``, and every other partition keeps going.

The worker is one object written as parts by job: what it holds (``worker_state.py``), the batches
(``worker_batches.py``), the snapshot cycle (``worker_snapshots.py``) and the rebalances
(``worker_rebalance.py``); this module builds it and runs the loop.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import Consumer, TopicPartition

from stream_monitor.adapters.kafka.clients import (
    AlertPublisher,
    DeadLetterPublisher,
    Redactor,
    TrackedProducer,
    producer_settings,
)
from stream_monitor.adapters.kafka.faults import STATS_INTERVAL_MS, KafkaWatch
from stream_monitor.adapters.kafka.state_store import StateStore, TopicReader
from stream_monitor.adapters.kafka.worker_batches import PartitionBatches
from stream_monitor.adapters.kafka.worker_rebalance import Rebalancing
from stream_monitor.adapters.kafka.worker_state import _Owned, _PendingSnapshot
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import ServiceModels
from stream_monitor.pipeline.counters import ServiceStats

CONSUMER_DEFAULTS: Final[dict[str, Any]] = {
    "session.timeout.ms": 10_000,
    "fetch.wait.max.ms": 100,
    "partition.assignment.strategy": "cooperative-sticky",
}
MAX_POLL_INTERVAL_MS: Final = 300_000  # librdkafka's default max.poll.interval.ms
FETCH_QUEUE_BACKOFF_MS: Final = 10  # how soon a full prefetch queue is looked at again
CONSUMER_REQUIRED: Final[dict[str, Any]] = {
    "enable.auto.commit": False,  # offsets are committed only once a snapshot covering them is durable
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}


def prefetch_settings(batch_max_events: int) -> dict[str, Any]:
    """librdkafka's local queue of fetched messages held to about one batch (``service.batch_max_events``).

    librdkafka fetches ahead until its queue holds ``queued.min.messages`` (100,000 by default) or
    ``queued.max.messages.kbytes`` of payload (64 MiB, left as it is: the bound for large messages). A worker
    given partitions with a backlog held 100k messages at once: 50 MiB for 170-byte feature events (about 520
    bytes each: the payload, its share of the fetch buffer, the op that carries it), the whole of what a worker
    taking a 100k backlog over grew by. A full queue pauses fetching for ``fetch.queue.backoff.ms`` (1 s by
    default, which a queue of 100k messages outlasts at 100k events/s, and one batch does not): checked every
    10 ms instead, the next batch is fetched while the last one is folded.

    >>> prefetch_settings(20_000)
    {'queued.min.messages': 20000, 'fetch.queue.backoff.ms': 10}
    """
    return {"queued.min.messages": batch_max_events, "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS}


def consumer_settings(client: Mapping[str, Any], group: str, batch_max_events: int) -> dict[str, Any]:
    """A new settings dict for the worker's consumer: our defaults (the prefetch queue sized to a batch), then
    the user's ``kafka.client`` settings, then what exactness requires, then the group."""
    settings = dict(CONSUMER_DEFAULTS)
    settings.update(prefetch_settings(batch_max_events))
    settings.update(client)
    settings.update(CONSUMER_REQUIRED)
    settings["group.id"] = group
    return settings


class Worker(PartitionBatches, Rebalancing):
    """Runs stage 1 and stage 2 for the partitions the consumer group gives this process."""

    def __init__(
        self,
        config: MonitorConfig,
        models: ServiceModels,
        stats: ServiceStats,
        fault_after_batches: int | None = None,
        watch: KafkaWatch | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.stats = stats
        self.fault_after_batches = fault_after_batches
        secrets = [
            v.get_secret_value() for v in config.kafka.client.values() if hasattr(v, "get_secret_value")
        ]
        self.redactor = Redactor(secrets)
        # Every client logs through the watch (rate-limited) and reports its errors to it (/readyz).
        self.watch = watch or KafkaWatch(config.kafka.bootstrap_servers, self.redactor.scrub)
        client = {**config.kafka.client_settings(), **self.watch.hooks()}
        t = config.topics
        self.input_streams = {
            t.features: Stream.FEATURES,
            t.predictions: Stream.PREDICTIONS,
            t.labels: Stream.LABELS,
        }
        self.producer = TrackedProducer(producer_settings(client), self.redactor)
        self.alerts = AlertPublisher(self.producer, t.alerts, stats)
        self.dlq = DeadLetterPublisher(self.producer, t.dlq, self.redactor)
        self.reader = TopicReader(client, f"{config.service.consumer_group}.reader")
        self._check_topics()
        self.store = StateStore(self.reader, self.producer, t.state)
        self.sources = [
            f"{topic}:{p}"
            for topic in (t.features, t.predictions)
            for p in range(self.reader.partitions(topic))
        ]
        self.label_sources = [f"{t.labels}:{p}" for p in range(self.reader.partitions(t.labels))]
        settings = consumer_settings(client, config.service.consumer_group, config.service.batch_max_events)
        settings["stats_cb"] = self.watch.stats  # tells the watch when a broker is back after all were down
        settings.setdefault("statistics.interval.ms", STATS_INTERVAL_MS)
        self._cooperative = "cooperative" in str(settings.get("partition.assignment.strategy", ""))
        self.max_poll_s = float(settings.get("max.poll.interval.ms", MAX_POLL_INTERVAL_MS)) / 1000
        self.consumer = Consumer(settings)
        self.owned: dict[tuple[str, int], _Owned] = {}
        self.pending: list[_PendingSnapshot] = []
        self.to_commit: dict[tuple[str, int], TopicPartition] = {}
        self.batches = 0
        self._closing = False
        self._stop = threading.Event()
        self._last_lag = 0.0
        self.polled_at = time.monotonic()

    def _check_topics(self) -> None:
        missing = [name for _, name in required_topics(self.config) if not self.reader.partitions(name)]
        if missing:
            raise LookupError(
                f"topic(s) {', '.join(missing)} do not exist: "
                "run `stream-monitor topics create --config ...` first"
            )

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch, write final snapshots, commit and leave."""
        self._stop = stop
        t = self.config.topics
        topics = [name for name in (t.features, t.predictions, t.labels) if self.reader.partitions(name)]
        self.consumer.subscribe(
            [*topics, t.partials], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.stats.set_agent("stage1", True)
        self.stats.set_agent("stage2", True)
        self.stats.set_restoring(False)  # until an assignment brings state to restore (none may ever come)
        batch_max = self.config.service.batch_max_events
        # Everything built so far (modules, profiles, calibrated layouts) lives as long as the process: frozen,
        # the cyclic collector stops rescanning it. Full collections over it took about a tenth of the loop's
        # CPU at 100k events/s.
        gc.freeze()
        try:
            while not stop.is_set():
                messages = self.consumer.consume(num_messages=batch_max, timeout=0.1)
                self.polled_at = time.monotonic()
                self.producer.poll(0)
                if messages:
                    self._handle(messages)
                if self._poll_overdue():
                    # The group has given this worker's partitions away (or is about to): declaring them idle,
                    # snapshotting or committing them now would act for their new owners. The next consume()
                    # says which partitions are lost (on_lost drops them) and rejoins.
                    continue
                self._tick()
        finally:
            self._shutdown()


def required_topics(config: MonitorConfig) -> list[tuple[str, str]]:
    """``(config key, name)`` of every topic ``run`` needs (predictions and labels are read if they exist)."""
    t = config.topics
    keys = [
        "features",
        "partials",
        "state",
        "alerts",
        "dlq",
        *(["retraining"] if t.retraining else []),
        *(["window_stats"] if t.window_stats else []),
    ]
    return [(key, str(getattr(t, key))) for key in keys]
