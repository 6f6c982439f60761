"""The worker's timers: idle partitions' partials, snapshots behind their barrier, commits, consumer lag.

Nothing is committed per batch: a partition's stage is snapshotted at a batch boundary, the snapshot waits
until every message produced before it is acknowledged, is written to the state topic, and only then is the
input offset it covers committed (the steps are in :mod:`stream_monitor.adapters.kafka.worker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from confluent_kafka import TopicPartition

from stream_monitor.adapters.kafka.state_store import pointer
from stream_monitor.adapters.kafka.worker_state import WorkerParts, _Owned, _PendingSnapshot, log
from stream_monitor.pipeline.merge_partition import MergePartition
from stream_monitor.pipeline.partials import encode_snapshot
from stream_monitor.pipeline.partition_fold import PartitionFolder

# A partition without messages this long is snapshotted (if changed) right away, so it is committed promptly.
QUIET_SNAPSHOT_S: Final = 0.25
LAG_EVERY_S: Final = 2.0


class SnapshotCycle(WorkerParts):
    """Runs between batches: what is due for idleness, snapshotting, committing and lag reporting."""

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
