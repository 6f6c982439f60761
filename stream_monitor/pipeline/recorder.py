"""Feed :class:`~stream_monitor.pipeline.counters.ServiceStats` from the engine after each batch.

The Kafka service and replay-driven tests share this one path from the detection core to the metrics: after
a batch went through ``Engine.process`` (or ``process_events``), :meth:`EngineRecorder.record` adds what
changed: accepted events per model and stream (the growth of each pipeline's ``accepted`` counter), rejected
events and dead letters by reason, the alerts, each model's window fill and, after a window test, the latest
statistic, threshold and status of every signal.
Pieces of the service that run the stages apart (a stage-2 worker holds a monitor and an assembler, not a
whole pipeline) call :func:`record_monitor` and :func:`observe_latency` directly.

Everything here is pure: no prometheus_client, no clock (``now`` is an argument).

Examples
--------
>>> import numpy as np
>>> from stream_monitor.pipeline.counters import ServiceStats
>>> stats = ServiceStats()
>>> observe_latency(stats, "features", np.array([99.5, 98.0, np.nan]), now=100.0)
>>> h = stats.snapshot().latency["features"]
>>> h.n, h.total, {h.buckets[i]: c for i, c in enumerate(h.counts) if c}  # a NaN time is not observed
(2, 2.5, {0.5: 1, 2.5: 1})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import FieldPath, Stream, parse_timestamps
from stream_monitor.pipeline.counters import LATENCY_BUCKETS, ServiceStats
from stream_monitor.pipeline.detection import ModelMonitor
from stream_monitor.pipeline.local import Engine, ModelPipeline, ProcessResult

#: ``model`` label of rejected events here. The engine does not say which model a rejection belonged to (an
#: undecodable message or an unknown ``model_id`` names none), so all of them go under the label the Kafka
#: service uses for messages routed to no model; their reasons are in ``dead_letters``.
UNATTRIBUTED: Final = "unrouted"
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"

_BOUNDS: Final = np.asarray(LATENCY_BUCKETS, dtype=np.float64)


def window_fill(pipeline: ModelPipeline) -> float:
    """Share of ``max_events`` the model's open window holds, counting slices not yet merged into it.

    Parameters
    ----------
    pipeline
        The model's pipeline.

    Returns
    -------
    float
        In ``[0, 1]`` (a window closes at ``max_events``; slices can overshoot it a little, which is clipped).
    """
    current = pipeline.assembler.current
    events = 0 if current is None else current.primary_events
    events += pipeline.unwindowed_events()
    return min(1.0, events / pipeline.assembler.max_events)


def record_monitor(stats: ServiceStats, model_id: str, monitor: ModelMonitor, fill: float) -> None:
    """Record one model's window state and the outcome of its latest window test.

    Parameters
    ----------
    stats
        Where to record.
    model_id
        The model.
    monitor
        The model's monitor; its ``last_observations`` and ``lifecycle.firing`` are read, never changed.
    fill
        The open window's fill ratio (see :func:`window_fill`).
    """
    stats.set_window(model_id, fill, monitor.windows_tested)
    if monitor.last_observations:
        stats.record_observations(model_id, monitor.last_observations, monitor.lifecycle.firing)


def latency_counts(latencies: NDArray[np.float64]) -> tuple[list[int], float]:
    """Bucket latencies (seconds) into ``LATENCY_BUCKETS`` plus +Inf with one ``searchsorted``.

    Parameters
    ----------
    latencies
        Seconds; NaN values are dropped and negative ones (clock skew) count as 0.

    Returns
    -------
    tuple of (list of int, float)
        Counts per bucket (``len(LATENCY_BUCKETS) + 1``, not cumulative) and the sum of the latencies.
    """
    lat = latencies[~np.isnan(latencies)]
    lat = np.maximum(lat, 0.0)
    idx = np.searchsorted(_BOUNDS, lat, side="left")  # first bound >= value: Prometheus' ``le``
    counts = np.bincount(idx, minlength=len(_BOUNDS) + 1)
    return [int(c) for c in counts], float(lat.sum())


def observe_latency(stats: ServiceStats, stream: str, event_ts: NDArray[np.float64], now: float) -> None:
    """Observe the event-to-processing latency of a batch, ``now - ts`` per event, in one call.

    Parameters
    ----------
    stats
        Where to record.
    stream
        The stream label (``features``, ``predictions``, ``labels``).
    event_ts
        Event times, epoch seconds (NaN where unknown).
    now
        Processing time, epoch seconds.
    """
    if len(event_ts) == 0:
        return
    counts, total = latency_counts(now - np.asarray(event_ts, dtype=np.float64))
    if sum(counts):
        stats.observe_latency(stream, counts, total)


def event_times(events: Sequence[dict[str, Any]], ts_path: str = "ts") -> NDArray[np.float64]:
    """Event times of decoded events in epoch seconds, NaN where missing or invalid."""
    values, _ = parse_timestamps(FieldPath(ts_path).get_all(events), "auto")
    return values


class EngineRecorder:
    """Adds what an :class:`Engine` did in each batch to a :class:`ServiceStats`.

    Parameters
    ----------
    stats
        Where to record.
    engine
        The engine; read after each batch, never changed.
    """

    def __init__(self, stats: ServiceStats, engine: Engine) -> None:
        self.stats = stats
        self.engine = engine
        self._accepted: dict[tuple[str, str], int] = {}
        self._tested: dict[str, tuple[int, int]] = {}

    def record(
        self,
        stream: Stream,
        result: ProcessResult,
        *,
        batch_seconds: float | None = None,
        stage: str = "engine",
    ) -> None:
        """Record one processed batch.

        Parameters
        ----------
        stream
            The stream the batch came from.
        result
            What :meth:`Engine.process` or :meth:`Engine.process_events` returned for it (or
            :meth:`Engine.flush`'s alerts wrapped in a :class:`ProcessResult`).
        batch_seconds
            Processing time of the batch, if measured; observed under ``stage``.
        stage
            The ``stage`` label of the batch-duration histogram.
        """
        stats = self.stats
        for model_id, pipeline in self.engine.pipelines.items():
            for name, total in pipeline.accepted.items():
                key = (model_id, name)
                delta = total - self._accepted.get(key, 0)
                if delta:
                    stats.count_events(model_id, name, ACCEPTED, delta)
                    self._accepted[key] = total
            self.record_pipeline(model_id, pipeline)
        if result.rejections:
            stats.count_events(UNATTRIBUTED, stream.value, REJECTED, len(result.rejections))
            for reason, n in _by_reason(result).items():
                stats.count_dead_letter(reason, n)
        if result.alerts:
            stats.count_alerts(result.alerts)
        if batch_seconds is not None:
            stats.observe_batch(stage, batch_seconds)

    def record_pipeline(self, model_id: str, pipeline: ModelPipeline) -> None:
        """Window fill always; observations only when a window was tested since the last call."""
        monitor = pipeline.monitor
        tested = (monitor.windows_tested, pipeline.performance_observations)
        if self._tested.get(model_id) == tested:
            self.stats.set_window(model_id, window_fill(pipeline), monitor.windows_tested)
            return
        self._tested[model_id] = tested
        record_monitor(self.stats, model_id, monitor, window_fill(pipeline))


def _by_reason(result: ProcessResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in result.rejections:
        out[r.reason.value] = out.get(r.reason.value, 0) + 1
    return out
