"""The worker loop: one confluent-kafka consumer drives stage 1 and stage 2; one idempotent producer writes.

Why a confluent-kafka loop and not Faust agents on the hot path (measured and argued in
``adapters/faust/app.py`` and ``scripts/bench_service.py``): exactness needs the state and the input offsets
it
covers to move together, which Faust 0.15's at-least-once tables and ack-on-exception agents do not give, and
``getmany``-style batches are what make 100k events/s per worker conceivable at all.

Per batch (``consume(batch_max_events)``), messages are grouped by partition, handed to the partition's stage
object (:class:`PartitionFolder` for input topics, :class:`MergePartition` for the partials topic), and what
comes back is produced: partials, dead letters, alerts. Nothing is committed per batch. Instead, on a timer
per
partition (``service.snapshot_seconds``) the stage object is snapshotted at a batch boundary, and:

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
"""

from __future__ import annotations

import gc
import logging
import operator
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from stream_monitor.adapters.kafka.clients import (
    AlertPublisher,
    DeadLetterPublisher,
    Redactor,
    TrackedProducer,
    producer_settings,
)
from stream_monitor.adapters.kafka.faults import STATS_INTERVAL_MS, KafkaWatch
from stream_monitor.adapters.kafka.state_store import (
    StateStore,
    TopicReader,
    parse_pointer,
    pointer,
    stage1_key,
    stage2_key,
)
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import decode_alert, retraining_requests
from stream_monitor.core.errors import SnapshotError
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import ServiceModels
from stream_monitor.pipeline.counters import LATENCY_BUCKETS, ServiceStats
from stream_monitor.pipeline.merge_partition import MergePartition, Stage2Result, alert_key
from stream_monitor.pipeline.partials import Partial, decode_snapshot, encode_partial, encode_snapshot
from stream_monitor.pipeline.partition_fold import PartitionFolder, Stage1Result

log = logging.getLogger(__name__)

CONSUMER_DEFAULTS: Final[dict[str, Any]] = {
    "session.timeout.ms": 10_000,
    "fetch.wait.max.ms": 100,
    "partition.assignment.strategy": "cooperative-sticky",
}
CONSUMER_REQUIRED: Final[dict[str, Any]] = {
    "enable.auto.commit": False,  # offsets are committed only once a snapshot covering them is durable
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}
HANDOFF_FLUSH_S: Final = 5.0
# A partition without messages this long is snapshotted (if changed) right away, so it is committed promptly.
QUIET_SNAPSHOT_S: Final = 0.25
LAG_EVERY_S: Final = 2.0
ALERT_TAIL_MAX: Final = 100_000  # alerts read back per partition when a stage 2 starts without a snapshot
_LATENCY_EDGES: Final = np.asarray(LATENCY_BUCKETS)


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


class Worker:
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
        settings = dict(CONSUMER_DEFAULTS)
        settings.update(client)
        settings.update(CONSUMER_REQUIRED)
        settings["group.id"] = config.service.consumer_group
        settings["stats_cb"] = self.watch.stats  # tells the watch when a broker is back after all were down
        settings.setdefault("statistics.interval.ms", STATS_INTERVAL_MS)
        self._cooperative = "cooperative" in str(settings.get("partition.assignment.strategy", ""))
        self.consumer = Consumer(settings)
        self.owned: dict[tuple[str, int], _Owned] = {}
        self.pending: list[_PendingSnapshot] = []
        self.to_commit: dict[tuple[str, int], TopicPartition] = {}
        self.batches = 0
        self._closing = False
        self._stop = threading.Event()
        self._last_lag = 0.0

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
                self.producer.poll(0)
                if messages:
                    self._handle(messages)
                self._tick()
        finally:
            self._shutdown()

    def _handle(self, messages: Sequence[Message]) -> None:
        mono = time.monotonic()
        for (topic, partition), group in _runs(messages):
            owned = self.owned.get((topic or "", partition or 0))
            errors = list(map(Message.error, group))
            good = group
            if errors.count(None) < len(errors):
                good = [m for m, err in zip(group, errors, strict=True) if err is None]
                for err in errors:
                    if err is not None and err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", self.redactor.scrub(err.str()))
            if owned is None or owned.failed or not good:
                continue
            owned.last_message = mono
            stage = "stage2" if isinstance(owned.stage, MergePartition) else "stage1"
            started = time.perf_counter()
            try:
                self.batches += 1
                if self.fault_after_batches is not None and self.batches > self.fault_after_batches:
                    raise RuntimeError("injected fault (STREAM_MONITOR_FAULT_AFTER_BATCHES)")
                if isinstance(owned.stage, PartitionFolder):
                    self._stage1(owned.stage, good)
                else:
                    self._stage2(owned.stage, good)
            except Exception as exc:  # the loop must survive anything a stage does
                self._fail(owned, stage, exc)
                continue
            self.stats.observe_batch(stage, time.perf_counter() - started)

    def _stage1(self, folder: PartitionFolder, group: Sequence[Message]) -> None:
        offsets = list(map(Message.offset, group))
        values = list(map(Message.value, group))
        now = time.time()
        result = folder.process(offsets, values, time.monotonic())  # type: ignore[arg-type]
        for partial in result.partials:
            self._publish_partial(partial)
        for r in result.rejections:
            msg = group[r.index]
            self.dlq.send(
                msg.value(),
                msg.key(),
                r.reason.value,
                r.detail,
                folder.topic,
                folder.partition,
                offsets[r.index] or 0,
                _headers(msg),
                now,
            )
            self.stats.count_dead_letter(r.reason.value)
        self._count_stage1(folder, result, now)

    def _count_stage1(self, folder: PartitionFolder, result: Stage1Result, now: float) -> None:
        stream = folder.stream.value
        self.stats.count_slow_decoded(result.slow_decoded)
        for model, n in result.accepted.items():
            self.stats.count_events(model, stream, "accepted", n)
        for model, n in result.rejected_by_model.items():
            self.stats.count_events(model, stream, "rejected", n)
        if result.event_ts:
            lag = now - np.concatenate(result.event_ts)
            counts = np.bincount(
                np.searchsorted(_LATENCY_EDGES, lag, side="left"), minlength=len(_LATENCY_EDGES) + 1
            )
            self.stats.observe_latency(stream, counts.tolist(), float(lag.sum()))

    def _publish_partial(self, partial: Partial) -> None:
        self.producer.produce(self.config.topics.partials, encode_partial(partial), key=partial.model)

    def _stage2(self, merge: MergePartition, group: Sequence[Message]) -> None:
        result = merge.process([int(m.offset() or 0) for m in group], [m.value() for m in group])
        self._emit(result)
        for model, merger in merge.mergers.items():
            self.stats.set_window(model, merger.window_fill, merger.monitor.windows_tested)
            if merger.performance is not None:
                self.stats.set_labels(model, merger.performance.joiner.stats().as_dict())

    def _emit(self, result: Stage2Result) -> None:
        for w in result.windows:
            if w.tested:
                self.stats.record_observations(w.model, w.observations, w.firing)
        if result.alerts:
            self.alerts.publish(result.alerts)
            self.stats.count_alerts(result.alerts)
            retraining = self.config.topics.retraining
            if retraining:
                # deduped with the alerts: one request per critical concept-drift episode
                for request in retraining_requests(result.alerts):
                    self.producer.produce(retraining, orjson.dumps(request), key=request.model_id)
            for a in result.alerts:
                log.info(
                    "alert %s %s %s %s/%s: %s",
                    a.status.value,
                    a.severity.value,
                    a.model_id,
                    a.kind.value,
                    a.signal,
                    a.message,
                )
        if result.duplicates:
            log.info("suppressed %d alert(s) emitted before a restart", result.duplicates)
        if result.bad:
            log.warning("skipped %d malformed or unknown-model partial(s)", result.bad)

    def _fail(self, owned: _Owned, stage: str, exc: Exception) -> None:
        owned.failed = True
        self.stats.set_agent(stage, False)
        log.error(
            "%s on %s[%d] failed (%s: %s); partition paused, its last snapshot stands",
            stage,
            owned.tp.topic,
            owned.tp.partition,
            type(exc).__name__,
            self.redactor.scrub(str(exc)),
        )
        try:
            self.consumer.pause([TopicPartition(owned.tp.topic, owned.tp.partition)])
        except Exception as pause_exc:
            log.error(
                "could not pause %s[%d]: %s", owned.tp.topic, owned.tp.partition, type(pause_exc).__name__
            )

    # ---- timers: idleness, snapshots, commits, lag ---------------------------------------------------------
    def _tick(self) -> None:
        mono = time.monotonic()
        idle_s = self.config.service.idle_partition_seconds
        for owned in self.owned.values():
            if isinstance(owned.stage, PartitionFolder) and not owned.failed:
                for partial in owned.stage.idle_partials(mono, idle_s):
                    self._publish_partial(partial)
        every = self.config.service.snapshot_seconds
        for owned in self.owned.values():
            if (
                not owned.failed
                and not owned.pending
                and owned.stage.changed
                and owned.stage.next_offset is not None
                and self._snapshot_due(owned, mono, every)
            ):
                self._take_snapshot(owned, mono)
        self._advance_snapshots()
        if self.to_commit:
            offsets = [tp for key, tp in self.to_commit.items() if key in self.owned]
            self.to_commit.clear()
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=True)
        if mono - self._last_lag >= LAG_EVERY_S:
            self._last_lag = mono
            self._record_lag()

    @staticmethod
    def _snapshot_due(owned: _Owned, mono: float, every: float) -> bool:
        """Every ``snapshot_seconds`` while a partition is busy; soon after it goes quiet, so a paused or
        caught-up stream has its offsets committed promptly instead of a whole interval later."""
        since = mono - owned.last_snapshot
        return since >= every or (since >= QUIET_SNAPSHOT_S and mono - owned.last_message >= QUIET_SNAPSHOT_S)

    def _take_snapshot(self, owned: _Owned, mono: float) -> None:
        stage = owned.stage
        if isinstance(stage, MergePartition):
            stage.alerts_offsets.update(self.alerts.delivered_offsets)
        payload = encode_snapshot(stage.snapshot())
        assert stage.next_offset is not None
        self.pending.append(_PendingSnapshot(owned, payload, stage.next_offset, self.producer.last_seq))
        owned.pending = True
        owned.last_snapshot = mono
        stage.changed = False

    def _advance_snapshots(self) -> None:
        still: list[_PendingSnapshot] = []
        for snap in self.pending:
            if snap.owned.failed:
                snap.owned.pending = False
                continue
            if not snap.produced and self.producer.delivered_through(snap.barrier):
                snap.produced = True
                self.store.save(snap.owned.key, snap.payload, self._snapshot_delivered(snap))
            if snap.owned.pending:
                still.append(snap)
        self.pending = still

    def _snapshot_delivered(self, snap: _PendingSnapshot) -> Callable[[int, int], None]:
        def done(partition: int, offset: int) -> None:
            owned = snap.owned
            owned.pending = False
            tp = TopicPartition(
                owned.tp.topic, owned.tp.partition, snap.next_offset, pointer(partition, offset)
            )
            self.to_commit[(owned.tp.topic, owned.tp.partition)] = tp

        return done

    def _record_lag(self) -> None:
        for (topic, partition), owned in self.owned.items():
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except Exception as exc:  # lag is best effort
                log.debug("no watermark for %s[%d]: %s", topic, partition, type(exc).__name__)
                continue
            position = owned.stage.next_offset
            if high is not None and high >= 0 and position is not None:
                self.stats.set_lag(topic, partition, max(int(high) - position, 0))

    # ---- rebalances ---------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stop.is_set():
            # Shutting down: take the partitions (the protocol requires it) but neither restore nor process
            # them; nothing is snapshotted or committed for them, so their next owner starts where we would.
            log.info("stopping: %d partition(s) assigned meanwhile are left untouched", len(partitions))
        else:
            self.stats.set_restoring(True)
            try:
                self._restore(partitions)
            finally:
                self.stats.set_restoring(False)
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _restore(self, partitions: list[TopicPartition]) -> None:
        partials = self.config.topics.partials
        committed = {(tp.topic, tp.partition): tp for tp in self.consumer.committed(partitions, timeout=30)}
        keys: dict[tuple[str, int], str] = {}
        for tp in partitions:
            make = stage2_key if tp.topic == partials else stage1_key
            keys[(tp.topic, tp.partition)] = make(tp.topic, tp.partition)
        hints = {
            keys[k]: parse_pointer(getattr(c, "metadata", None)) for k, c in committed.items() if k in keys
        }
        payloads = self.store.load({key: hints.get(key) for key in keys.values()})
        mono = time.monotonic()
        tails: list[MergePartition] = []
        for tp in partitions:
            where = (tp.topic, tp.partition)
            stage = self._new_stage(tp, mono)
            payload = payloads.get(keys[where])
            if payload is not None:
                try:
                    state = decode_snapshot(payload)
                    dropped = (
                        stage.restore(state, mono)
                        if isinstance(stage, PartitionFolder)
                        else stage.restore(state)
                    )
                    if dropped:
                        log.warning(
                            "%s[%d]: state of model(s) %s dropped (reference or config changed)",
                            tp.topic,
                            tp.partition,
                            ", ".join(dropped),
                        )
                except SnapshotError as exc:
                    log.error(
                        "%s[%d]: snapshot unusable (%s); starting this partition afresh",
                        tp.topic,
                        tp.partition,
                        exc,
                    )
                    stage = self._new_stage(tp, mono)
            if stage.next_offset is not None:
                tp.offset = stage.next_offset
            else:
                c = committed.get(where)
                tp.offset = c.offset if c is not None and c.offset >= 0 else OFFSET_BEGINNING
            if isinstance(stage, MergePartition):
                tails.append(stage)
            self.owned[where] = _Owned(TopicPartition(tp.topic, tp.partition), stage, keys[where], mono)
            log.info(
                "assigned %s[%d] from offset %s (%s)",
                tp.topic,
                tp.partition,
                tp.offset if tp.offset >= 0 else "beginning",
                "restored" if payload else "fresh",
            )
        if tails:
            self._read_alert_tail(tails)

    def _new_stage(self, tp: TopicPartition, mono: float) -> PartitionFolder | MergePartition:
        if tp.topic == self.config.topics.partials:
            return self.models.merge_partition(tp.topic, tp.partition, self.sources, self.label_sources)
        return self.models.partition_folder(tp.topic, tp.partition, self.input_streams[tp.topic], mono)

    def _read_alert_tail(self, merges: list[MergePartition]) -> None:
        """Learn which alerts were emitted after the restored snapshots, so a replay does not emit them
        again."""
        topic = self.config.topics.alerts
        starts: dict[int, int] = {}
        for p in range(self.reader.partitions(topic)):
            hinted = [
                m.alerts_offsets[p] for m in merges if p in m.alerts_offsets and m.next_offset is not None
            ]
            if hinted and all(m.next_offset is not None for m in merges):
                starts[p] = min(hinted)
            else:
                _, high = self.reader.watermarks(topic, p)
                starts[p] = max(high - ALERT_TAIL_MAX, 0)
        models = {m for merge in merges for m in merge.mergers} or set(self.models.layouts)
        keys = []
        for _, _, key, value in self.reader.read(topic, starts):
            if value is None or (key is not None and key.decode("utf-8", "replace") not in models):
                continue
            try:
                keys.append(alert_key(decode_alert(value)))
            except (ValueError, KeyError, TypeError):
                continue
        for merge in merges:
            merge.remember(keys)
        if keys:
            log.info("read %d alert(s) from the alerts topic's tail for dedupe", len(keys))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._closing:
            return
        self._handoff([(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Someone else may own them already: never snapshot or commit lost partitions.
        for tp in partitions:
            self.owned.pop((tp.topic, tp.partition), None)
        self.pending = [s for s in self.pending if (s.owned.tp.topic, s.owned.tp.partition) in self.owned]
        log.warning("lost %d partition(s) (session timeout?); their state is dropped here", len(partitions))

    def _handoff(self, keys: list[tuple[str, int]]) -> None:
        """Final snapshots of ``keys``, written and committed synchronously, then the state is dropped."""
        leaving = [self.owned[k] for k in keys if k in self.owned]
        mono = time.monotonic()
        for owned in leaving:
            if (
                not owned.failed
                and owned.stage.next_offset is not None
                and (owned.stage.changed or owned.pending)
            ):
                self.pending = [s for s in self.pending if s.owned is not owned]
                owned.pending = False
                self._take_snapshot(owned, mono)
        left = self.producer.flush(HANDOFF_FLUSH_S)
        self._advance_snapshots()
        left = self.producer.flush(HANDOFF_FLUSH_S)
        if left:
            log.error(
                "%d message(s) still unacknowledged at handoff; their snapshots are not committed", left
            )
        offsets = [tp for key, tp in self.to_commit.items() if key in keys]
        for key in keys:
            self.to_commit.pop(key, None)
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # the snapshot is written; the next owner finds it
                log.warning("commit at handoff failed: %s", self.redactor.scrub(str(exc)))
        for key in keys:
            self.owned.pop(key, None)
        self.pending = [s for s in self.pending if (s.owned.tp.topic, s.owned.tp.partition) in self.owned]
        if leaving:
            log.info("handed off %d partition(s)", len(leaving))

    def _shutdown(self) -> None:
        try:
            self._handoff(list(self.owned))
        finally:
            self._closing = True
            self.consumer.close()
            self.producer.flush(HANDOFF_FLUSH_S)
            self.reader.close()


def required_topics(config: MonitorConfig) -> list[tuple[str, str]]:
    """``(config key, name)`` of every topic ``run`` needs (predictions and labels are read if they exist)."""
    t = config.topics
    keys = ["features", "partials", "state", "alerts", "dlq", *(["retraining"] if t.retraining else [])]
    return [(key, str(getattr(t, key))) for key in keys]


def _headers(msg: Message) -> list[tuple[str, bytes]] | None:
    """The message's own headers, to keep on its dead letter."""
    raw = msg.headers()
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in items]


def _runs(messages: Sequence[Message]) -> list[tuple[tuple[str | None, int | None], Sequence[Message]]]:
    """Messages grouped by (topic, partition), each group in consumed order. A batch holds long runs of one
    partition, so run boundaries are found with C-level passes, not a Python step per message."""
    n = len(messages)
    if n == 0:
        return []
    partitions = list(map(Message.partition, messages))
    topics = list(map(Message.topic, messages))
    changed = np.fromiter(map(operator.ne, partitions[1:], partitions), dtype=bool, count=n - 1)
    changed |= np.fromiter(map(operator.ne, topics[1:], topics), dtype=bool, count=n - 1)
    cuts = (np.flatnonzero(changed) + 1).tolist()
    if not cuts:
        return [((topics[0], partitions[0]), messages)]
    groups: dict[tuple[str | None, int | None], list[Message]] = {}
    for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
        groups.setdefault((topics[lo], partitions[lo]), []).extend(messages[lo:hi])
    return list(groups.items())
