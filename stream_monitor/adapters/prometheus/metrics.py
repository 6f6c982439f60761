"""Prometheus exporter: a custom collector over :class:`ServiceStats`, in its own registry.

The processing thread only ever writes plain numbers into a
:class:`~stream_monitor.pipeline.counters.ServiceStats`. At scrape time :class:`ServiceCollector` takes
one snapshot (a copy made under the stats' lock, about 0.2 ms at 2,000 series) and builds every metric family
from it, so a scrape never touches live detector objects and the hot path never calls ``labels()`` or
``Gauge.set``. Every family is declared once, in :data:`~stream_monitor.adapters.prometheus.metric_specs.METRICS`;
the collector, ``describe()`` and ``docs/operations.md`` follow that table. The collector lives in its own
:class:`CollectorRegistry`, never prometheus_client's global one. The HTTP endpoints are in
:mod:`~stream_monitor.adapters.prometheus.metrics_server`.

Examples
--------
>>> from stream_monitor.pipeline.counters import ServiceStats
>>> stats = ServiceStats()
>>> stats.count_events("churn-v3", "features", "accepted", 5)
>>> text = generate_text(create_registry(stats, process=False))
>>> [line for line in text.splitlines() if line.startswith("stream_monitor_events_total")]
['stream_monitor_events_total{model="churn-v3",outcome="accepted",stream="features"} 5.0']
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from stream_monitor.adapters.prometheus.metric_specs import METRICS, MetricSpec
from stream_monitor.pipeline.counters import Histogram, ServiceStats


def _family(spec: MetricSpec) -> CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily:
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(spec.family, spec.documentation, labels=labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.family, spec.documentation, labels=labels)
    return HistogramMetricFamily(spec.family, spec.documentation, labels=labels)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    cumulative, buckets = 0, []
    for bound, count in zip((*h.buckets, float("inf")), h.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if math.isinf(bound) else repr(float(bound)), float(cumulative)))
    family.add_metric(labels, buckets, sum_value=h.total)


class ServiceCollector(Collector):
    """Builds every family of :data:`METRICS` from one :meth:`ServiceStats.snapshot` per scrape.

    Parameters
    ----------
    stats
        The statistics the service writes; only :meth:`~ServiceStats.snapshot` is called, from the
        scraping thread.
    """

    def __init__(self, stats: ServiceStats) -> None:
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        """Empty families: lets the registry check names without taking a snapshot."""
        for spec in METRICS:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        """Every family of :data:`METRICS`, filled from one snapshot taken now."""
        snap = self.stats.snapshot()
        for spec in METRICS:
            family = _family(spec)
            if isinstance(family, HistogramMetricFamily):
                for key, hist in spec.read(snap).items():
                    _add_histogram(family, [str(key)], hist)
            else:
                for labels, value in spec.read(snap):
                    family.add_metric(list(labels), value)
            yield family


def create_registry(stats: ServiceStats, *, process: bool = True) -> CollectorRegistry:
    """A new registry holding a :class:`ServiceCollector` and, with ``process``, the process, platform and
    garbage-collector collectors (``process_*``, ``python_info``, ``python_gc_*``).

    Parameters
    ----------
    stats
        What the service collector reads.
    process
        Whether to add prometheus_client's process, platform and GC collectors.

    Returns
    -------
    CollectorRegistry
        Its own registry; prometheus_client's global ``REGISTRY`` is never touched.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ServiceCollector(stats))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def generate_text(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text format (what ``/metrics`` serves by default)."""
    return generate_latest(registry).decode("utf-8")
