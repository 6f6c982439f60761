"""What a stage's result adds to the metrics and to the side topics: the same for every runtime.

The native worker loop and the Faust agents both hand batches to the same stage objects; this module is
where what comes back becomes counters (:class:`~stream_monitor.pipeline.counters.ServiceStats`) and the
records of the optional side topics (window statistics, retraining requests), so the two runtimes cannot
count or publish differently. Pure: ``now`` is an argument, and records are returned, not produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from stream_monitor.core.alerts import Alert, retraining_requests
from stream_monitor.core.window_stats import encode_window_stat
from stream_monitor.pipeline.counters import ServiceStats
from stream_monitor.pipeline.merge_partition import MergePartition, Stage2Result
from stream_monitor.pipeline.partition_fold import Stage1Result
from stream_monitor.pipeline.recorder import observe_latency
from stream_monitor.pipeline.window_stat_records import window_stat_records


@dataclass(frozen=True)
class SideRecord:
    """One record for a side topic, keyed by model id."""

    topic: str
    key: str
    value: bytes


def count_stage1(stats: ServiceStats, stream: str, result: Stage1Result, now: float) -> None:
    """Events accepted, rejected and suppressed as repeats per model, slow decodes, and event-to-processing
    latency (``now``: epoch seconds)."""
    stats.count_slow_decoded(result.slow_decoded)
    for model, n in result.accepted.items():
        stats.count_events(model, stream, "accepted", n)
    for model, n in result.rejected_by_model.items():
        stats.count_events(model, stream, "rejected", n)
    for model, n in result.duplicates.items():  # repeated event ids, suppressed (not dead-lettered)
        stats.count_events(model, stream, "duplicate", n)
    if result.event_ts:
        observe_latency(stats, stream, np.concatenate(result.event_ts), now)


def count_stage2(stats: ServiceStats, merge: MergePartition, result: Stage2Result) -> None:
    """Every tested window's observations, the alerts, and each model's window fill and label join."""
    for w in result.windows:
        if w.tested:
            stats.record_observations(w.model, w.observations, w.firing)
    stats.count_alerts(result.alerts)
    for model, merger in merge.mergers.items():
        stats.set_window(model, merger.window_fill, merger.monitor.windows_tested)
        if merger.performance is not None:
            figures = merger.performance.joiner.stats().as_dict()
            stats.set_labels(model, {**figures, "judged_until": merger.performance.watermark})


def side_records(
    result: Stage2Result, window_stats_topic: str | None, retraining_topic: str | None
) -> list[SideRecord]:
    """The window-statistics records of every tested window and the retraining requests of the alerts, for
    the topics that are configured (None: that topic is off).

    Window statistics are at least once: a window tested again after a restart publishes its records again.
    Retraining requests follow the alerts, which are deduplicated: one per critical concept-drift episode.
    """
    out: list[SideRecord] = []
    if window_stats_topic:
        for w in result.windows:
            for record in window_stat_records(w):
                out.append(SideRecord(window_stats_topic, w.model, encode_window_stat(record)))
    if retraining_topic:
        for request in retraining_requests(result.alerts):
            out.append(SideRecord(retraining_topic, request.model_id, orjson.dumps(request)))
    return out


def describe_alert(a: Alert) -> str:
    """The alert as the runtimes log it: ``firing critical m covariate_drift/x: <message>``."""
    return f"{a.status.value} {a.severity.value} {a.model_id} {a.kind.value}/{a.signal}: {a.message}"
