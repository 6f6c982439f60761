"""Prometheus exporter: a custom collector over :class:`ServiceStats` and a small HTTP server.

The processing thread only ever writes plain numbers into a
:class:`~stream_monitor.pipeline.counters.ServiceStats`. At scrape time :class:`ServiceCollector` takes
one snapshot (a copy made under the stats' lock, about 0.2 ms at 2,000 series) and builds every metric family
from it, so a scrape never touches live detector objects and the hot path never calls ``labels()`` or
``Gauge.set``. Every family is declared once, in :data:`METRICS`; the collector, ``describe()`` and
``docs/operations.md`` follow that table. The collector lives in its own :class:`CollectorRegistry`, never
prometheus_client's global one.

:func:`start_metrics_server` serves ``/metrics`` (Prometheus text format, or OpenMetrics when asked),
``/healthz`` (200 while the process runs) and ``/readyz`` (200 when ``stats.ready()``, else 503 and a reason)
from a daemon thread, bound to the address it is given and to nothing else.

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
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from stream_monitor.pipeline.counters import Histogram, ServiceStats, StatsSnapshot

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
        "Input events by model, stream and outcome (accepted, rejected); model 'unrouted': no model applies.",
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


def readiness(stats: ServiceStats, not_ready: Callable[[], str | None] | None = None) -> tuple[bool, str]:
    """``(ready, reason)`` for ``/readyz``: ready when ``not_ready`` (Kafka's account, e.g. ``waiting for Kafka
    at ...``) has no reason and :meth:`ServiceStats.ready`, else why not.

    Examples
    --------
    >>> stats = ServiceStats()
    >>> readiness(stats)
    (False, 'restoring state')
    >>> stats.set_restoring(False); stats.set_agent("fold", True); stats.set_agent("detect", False)
    >>> readiness(stats)
    (False, 'agent down: detect')
    >>> readiness(stats, lambda: "waiting for Kafka at b:9092: Connection refused")
    (False, 'waiting for Kafka at b:9092: Connection refused')
    """
    reason = not_ready() if not_ready is not None else None
    if reason:
        return False, reason
    if stats.ready():
        return True, "ready"
    snap = stats.snapshot()
    if snap.restoring:
        return False, "restoring state"
    down = sorted(name for name, up in snap.agents_up.items() if not up)
    if down:
        return False, f"agent down: {', '.join(down)}"
    if not snap.agents_up:
        return False, "no agent started yet"
    return False, "not ready"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        stats: ServiceStats,
        registry: CollectorRegistry,
        not_ready: Callable[[], str | None] | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.stats = stats
        self.not_ready = not_ready
        self.registry = registry
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "stream-monitor"
    sys_version = ""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(self.server.registry)
            except Exception as exc:  # a failing collector must not take the endpoint down
                self._reply(500, f"scrape failed: {type(exc).__name__}\n".encode())
                return
            self._reply(200, body, content_type)
        elif path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = readiness(self.server.stats, self.server.not_ready)
            self._reply(200 if ready else 503, reason.encode() + b"\n")
        else:
            self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every few seconds is not worth a log line."""


class MetricsServer:
    """A running metrics endpoint; :meth:`stop` shuts it down and frees the port.

    Attributes
    ----------
    host
        The address it is bound to.
    port
        The port it listens on (the actual one when 0 was asked for).
    registry
        The registry it serves.
    """

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])
        self.registry = server.registry

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_metrics_server(
    stats: ServiceStats,
    host: str = "127.0.0.1",
    port: int = 9108,
    *,
    registry: CollectorRegistry | None = None,
    not_ready: Callable[[], str | None] | None = None,
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

    Parameters
    ----------
    stats
        What ``/metrics`` and ``/readyz`` read.
    host
        The address to bind (``service.bind_host``; 127.0.0.1 by default, 0.0.0.0 only when asked for).
    port
        The port (``service.metrics_port``); 0 picks a free one, see :attr:`MetricsServer.port`.
    registry
        The registry to serve; by default :func:`create_registry` of ``stats``.
    not_ready
        Asked by ``/readyz`` first: a reason not to be ready that ``stats`` do not know (Kafka unreachable).

    Returns
    -------
    MetricsServer
        The running server.

    Raises
    ------
    OSError
        If the address cannot be bound (in use, or not an address of this host).
    """
    reg = registry if registry is not None else create_registry(stats)
    try:
        server = _Server((host, port), stats, reg, not_ready)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="stream-monitor-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
