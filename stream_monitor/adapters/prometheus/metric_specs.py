"""Every metric family the service exports, declared once: name, kind, help text, labels, and how its samples
are read from a :class:`~stream_monitor.pipeline.counters.StatsSnapshot`. The collector
(:mod:`~stream_monitor.adapters.prometheus.metrics`), ``describe()`` and ``docs/operations.md`` (kept so by a
test) follow this table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from stream_monitor.pipeline.counters import StatsSnapshot

Kind = Literal["counter", "gauge", "histogram"]
Samples = Iterable[tuple[tuple[str, ...], float]]


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: its name as queried, type, help text, labels and how to read it.

    Parameters
    ----------
    name
        The name users query; counters end in ``_total`` (the family name is without it).
    kind
        ``counter``, ``gauge`` or ``histogram``.
    documentation
        The ``# HELP`` text.
    labels
        Label names, in the order of the snapshot's keys.
    read
        Samples ``(label values, value)`` of a snapshot (counters and gauges), or histograms by label values.
    """

    name: str
    kind: Kind
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[StatsSnapshot], Any]

    @property
    def family(self) -> str:
        """The metric family's name: counters without ``_total`` (prometheus_client adds it to the sample)."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name


def _items(d: Mapping[Any, float | int | bool]) -> Samples:
    for key, value in d.items():
        labels = key if isinstance(key, tuple) else (key,)
        yield tuple(str(v) for v in labels), float(value)


def _one(value: float) -> Samples:
    return [((), float(value))]


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        "stream_monitor_events_total",
        "counter",
        "Input events by model, stream and outcome (accepted, rejected, duplicate: a repeated event id, "
        "suppressed); model 'unrouted': no model applies.",
        ("model", "stream", "outcome"),
        lambda s: _items(s.events),
    ),
    MetricSpec(
        "stream_monitor_dead_letters_total",
        "counter",
        "Messages sent to the dead-letter topic, by reason.",
        ("reason",),
        lambda s: _items(s.dead_letters),
    ),
    MetricSpec(
        "stream_monitor_slow_decoded_total",
        "counter",
        "Feature messages the typed decoder refused, decoded by the slower orjson path instead (a share that "
        "stays high means producers send fields or types the config does not expect).",
        (),
        lambda s: _one(s.slow_decoded),
    ),
    MetricSpec(
        "stream_monitor_alerts_total",
        "counter",
        "Alert events emitted, by model, kind, severity and status (firing, resolved).",
        ("model", "kind", "severity", "status"),
        lambda s: _items(s.alerts),
    ),
    MetricSpec(
        "stream_monitor_alert_delivery_failures_total",
        "counter",
        "Failed deliveries of alert events to the alerts topic (each is retried).",
        (),
        lambda s: _one(s.alert_delivery_failures),
    ),
    MetricSpec(
        "stream_monitor_drift_statistic",
        "gauge",
        "Latest value of a drift statistic on a signal, from the last tested window.",
        ("model", "kind", "signal", "detector"),
        lambda s: _items(s.drift_statistic),
    ),
    MetricSpec(
        "stream_monitor_drift_threshold",
        "gauge",
        "Warning threshold the drift statistic was compared with in the last tested window.",
        ("model", "kind", "signal", "detector"),
        lambda s: _items(s.drift_threshold),
    ),
    MetricSpec(
        "stream_monitor_drift_status",
        "gauge",
        "Alert state of a signal: 0 ok, 1 warning firing, 2 critical firing.",
        ("model", "kind", "signal"),
        lambda s: _items(s.drift_status),
    ),
    MetricSpec(
        "stream_monitor_window_fill_ratio",
        "gauge",
        "Events in the model's open window as a share of the window's max_events (0 to 1).",
        ("model",),
        lambda s: _items(s.window_fill),
    ),
    MetricSpec(
        "stream_monitor_windows_tested_total",
        "counter",
        "Windows tested for drift, by model.",
        ("model",),
        lambda s: _items(s.windows_tested),
    ),
    MetricSpec(
        "stream_monitor_consumer_lag",
        "gauge",
        "Messages between the consumer's position and the end of the partition.",
        ("topic", "partition"),
        lambda s: _items(s.consumer_lag),
    ),
    MetricSpec(
        "stream_monitor_event_latency_seconds",
        "histogram",
        "Processing time minus event time of input events, by stream.",
        ("stream",),
        lambda s: s.latency,
    ),
    MetricSpec(
        "stream_monitor_batch_duration_seconds",
        "histogram",
        "Wall-clock time to process one batch, by processing stage.",
        ("stage",),
        lambda s: s.batch_seconds,
    ),
    MetricSpec(
        "stream_monitor_agent_up",
        "gauge",
        "1 while a processing agent runs, 0 after it stopped or crashed.",
        ("agent",),
        lambda s: _items(s.agents_up),
    ),
    MetricSpec(
        "stream_monitor_restoring",
        "gauge",
        "1 while window state is being restored from a snapshot (not ready), else 0.",
        (),
        lambda s: _one(s.restoring),
    ),
    MetricSpec(
        "stream_monitor_outstanding_predictions",
        "gauge",
        "Predictions waiting for their label (bounded by labels.max_outstanding).",
        ("model",),
        lambda s: _label_figure(s, "outstanding"),
    ),
    MetricSpec(
        "stream_monitor_join_state_bytes",
        "gauge",
        "Bytes the label join holds for a model: waiting predictions and early labels (hash tables), and the "
        "fixed-size duplicate filter.",
        ("model",),
        lambda s: _label_figure(s, "state_bytes"),
    ),
    MetricSpec(
        "stream_monitor_join_bytes_per_prediction",
        "gauge",
        "Bytes of the join's prediction table per waiting prediction (config init sizes "
        "labels.max_outstanding at about 61).",
        ("model",),
        lambda s: [
            ((m,), f["prediction_table_bytes"] / f["outstanding"])
            for m, f in s.labels.items()
            if f.get("outstanding", 0) > 0 and "prediction_table_bytes" in f
        ],
    ),
    MetricSpec(
        "stream_monitor_label_coverage_ratio",
        "gauge",
        "Share of predictions whose label arrived before they expired.",
        ("model",),
        lambda s: _label_figure(s, "coverage"),
    ),
    MetricSpec(
        "stream_monitor_label_lag_seconds",
        "gauge",
        "Label time minus prediction time, by quantile (0.5, 0.95), from a log-spaced histogram.",
        ("model", "quantile"),
        lambda s: [
            ((m, q), f[key])
            for m, f in s.labels.items()
            for q, key in (("0.5", "lag_p50"), ("0.95", "lag_p95"))
            if key in f and math.isfinite(f[key])
        ],
    ),
    MetricSpec(
        "stream_monitor_performance_watermark_seconds",
        "gauge",
        "Event time (epoch seconds) up to which concept drift has been judged: labels of predictions before it "
        "that arrived have been counted.",
        ("model",),
        lambda s: _label_figure(s, "judged_until"),
    ),
    MetricSpec(
        "stream_monitor_predictions_evicted_total",
        "counter",
        "Predictions dropped from the join without a label, by reason (ttl, capacity).",
        ("model", "reason"),
        lambda s: [
            ((m, r), f[key])
            for m, f in s.labels.items()
            for r, key in (("ttl", "evicted_ttl"), ("capacity", "evicted_capacity"))
            if key in f
        ],
    ),
    MetricSpec(
        "stream_monitor_labels_stale_total",
        "counter",
        "Labels that came later than labels.freshness_sla_seconds: counted, not used.",
        ("model",),
        lambda s: _label_figure(s, "stale_labels"),
    ),
    MetricSpec(
        "stream_monitor_labels_joined_total",
        "counter",
        "Labels joined to their prediction and counted in the performance figures (each event id once).",
        ("model",),
        lambda s: _label_figure(s, "joined"),
    ),
    MetricSpec(
        "stream_monitor_labels_unmatched_total",
        "counter",
        "Labels that met no prediction, by reason (prediction_evicted: it came after its prediction left the "
        "join; early_ttl / early_capacity: it waited for a prediction that never came).",
        ("model", "reason"),
        lambda s: [
            ((m, r), f[key])
            for m, f in s.labels.items()
            for r, key in (
                ("prediction_evicted", "labels_after_eviction"),
                ("early_ttl", "early_labels_evicted_ttl"),
                ("early_capacity", "early_labels_evicted_capacity"),
            )
            if key in f
        ],
    ),
    MetricSpec(
        "stream_monitor_duplicate_events_total",
        "counter",
        "Predictions or labels whose event id was already seen: ignored.",
        ("model", "stream"),
        lambda s: [
            ((m, st), f[key])
            for m, f in s.labels.items()
            for st, key in (("predictions", "duplicate_predictions"), ("labels", "duplicate_labels"))
            if key in f
        ],
    ),
    MetricSpec(
        "stream_monitor_label_overflow_total",
        "counter",
        "Updates folded into a '__overflow__' series because a family reached its label-set cap.",
        (),
        lambda s: _one(s.overflow),
    ),
)


def _label_figure(s: StatsSnapshot, key: str) -> list[tuple[tuple[str], float]]:
    return [((m,), f[key]) for m, f in s.labels.items() if key in f and math.isfinite(f[key])]
