"""The worker's rebalances: restoring assigned partitions, handing off revoked ones, dropping lost ones.

On assignment the newest snapshot is restored and the consumer seeks to the offset it covers; a stage 2 also
reads the alerts topic's tail so that alerts emitted after its snapshot are not emitted again. On revocation
and shutdown, final snapshots are written and committed synchronously.
"""

from __future__ import annotations

import time
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stream_monitor.adapters.kafka.state_store import parse_pointer, stage1_key, stage2_key
from stream_monitor.adapters.kafka.worker_snapshots import SnapshotCycle
from stream_monitor.adapters.kafka.worker_state import _Owned, log
from stream_monitor.core.alerts import decode_alert
from stream_monitor.core.errors import SnapshotError
from stream_monitor.pipeline.merge_partition import MergePartition, alert_key
from stream_monitor.pipeline.partials import decode_snapshot
from stream_monitor.pipeline.partition_fold import PartitionFolder

HANDOFF_FLUSH_S: Final = 5.0
ALERT_TAIL_MAX: Final = 100_000  # alerts read back per partition when a stage 2 starts without a snapshot


class Rebalancing(SnapshotCycle):
    """The consumer's rebalance callbacks, and the final handoff at shutdown."""

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
            self.to_commit.pop((tp.topic, tp.partition), None)
            self.stats.forget_lag(tp.topic, tp.partition)
        self.pending = [s for s in self.pending if (s.owned.tp.topic, s.owned.tp.partition) in self.owned]
        log.warning(
            "lost %d partition(s) (session timeout, or a batch longer than max.poll.interval.ms); "
            "their state is dropped here",
            len(partitions),
        )

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
            self.stats.forget_lag(*key)
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
