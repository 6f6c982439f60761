"""The worker's batches: each partition's run of a consumed batch through its stage, and what comes out.

Stage 1 (:class:`PartitionFolder`, input topics) gives partials, dead letters and counters; stage 2
(:class:`MergePartition`, the partials topic) gives alerts and retraining requests. A failure inside a
partition pauses that partition only (see :mod:`stream_monitor.adapters.kafka.worker`).

A batch whose processing outlives ``max.poll.interval.ms`` stops at the next partition: librdkafka has left the
group by then, and the partitions' new owners read the rest from their snapshots. The rest is sought back, in
case the group kept them after all (``consume()`` is what tells).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence

import numpy as np
from confluent_kafka import KafkaError, Message, TopicPartition

from stream_monitor.adapters.kafka.worker_state import WorkerParts, _Owned, log
from stream_monitor.pipeline.merge_partition import MergePartition
from stream_monitor.pipeline.partition_fold import PartitionFolder
from stream_monitor.pipeline.stage_reports import count_stage1, count_stage2, describe_alert, side_records


class PartitionBatches(WorkerParts):
    """Hands each partition's messages of a batch to its stage and produces what comes back."""

    def _handle(self, messages: Sequence[Message]) -> None:
        mono = time.monotonic()
        runs = _runs(messages)
        for i, ((topic, partition), group) in enumerate(runs):
            if self._poll_overdue():
                self._leave_unprocessed(runs[i:])
                return
            owned = self.owned.get((topic or "", partition or 0))
            errors = list(map(Message.error, group))
            good = group
            # `is`, not ==: a KafkaError compared with None raises inside list.count (a SystemError)
            if any(err is not None for err in errors):
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

    def _poll_overdue(self) -> bool:
        """Whether the batch has taken longer than ``max.poll.interval.ms`` since ``consume()`` returned it."""
        return time.monotonic() - self.polled_at > self.max_poll_s

    def _leave_unprocessed(
        self, runs: Sequence[tuple[tuple[str | None, int | None], Sequence[Message]]]
    ) -> None:
        """Leave the rest of a batch that outlived the poll interval to the partitions' next owners; seek each
        owned partition back to its first unprocessed message in case this worker is still its owner."""
        left = 0
        for (topic, partition), group in runs:
            owned = self.owned.get((topic or "", partition or 0))
            good = [m for m in group if m.error() is None]
            left += len(good)
            if owned is None or owned.failed or not good:
                continue
            try:
                self.consumer.seek(TopicPartition(owned.tp.topic, owned.tp.partition, good[0].offset() or 0))
            except Exception as exc:  # no longer assigned: the next owner reads them
                log.debug(
                    "no seek back on %s[%d]: %s", owned.tp.topic, owned.tp.partition, type(exc).__name__
                )
        log.warning(
            "the batch took %.1f s, more than max.poll.interval.ms (%.0f s): the group is handing this worker's "
            "partitions to others, so %d message(s) of it are left unprocessed for their owners",
            time.monotonic() - self.polled_at,
            self.max_poll_s,
            left,
        )

    def _stage1(self, folder: PartitionFolder, group: Sequence[Message]) -> None:
        offsets = list(map(Message.offset, group))
        values = list(map(Message.value, group))
        now = time.time()
        result = folder.process(offsets, values, time.monotonic(), wall=now)  # type: ignore[arg-type]
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
        count_stage1(self.stats, folder.stream.value, result, now)

    def _stage2(self, merge: MergePartition, group: Sequence[Message]) -> None:
        result = merge.process([int(m.offset() or 0) for m in group], [m.value() for m in group])
        count_stage2(self.stats, merge, result)
        t = self.config.topics
        for record in side_records(result, t.window_stats, t.retraining):
            self.producer.produce(record.topic, record.value, key=record.key)
        if result.alerts:
            self.alerts.publish(result.alerts)
            for a in result.alerts:
                log.info("alert %s", describe_alert(a))
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
