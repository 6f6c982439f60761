"""The Prometheus exporter: exposition, names and labels, bounded cardinality, endpoints, binding, locking."""

from __future__ import annotations

import dataclasses
import inspect
import re
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stream_monitor.adapters.prometheus.metric_specs import METRICS
from stream_monitor.adapters.prometheus.metrics import create_registry, generate_text
from stream_monitor.adapters.prometheus.metrics_server import MetricsServer, start_metrics_server
from stream_monitor.config.schema import ServiceConfig
from stream_monitor.core.alerts import Alert, AlertKind, Severity, Status, WindowInfo
from stream_monitor.pipeline.counters import (
    BATCH_BUCKETS,
    LATENCY_BUCKETS,
    OVERFLOW,
    Histogram,
    ServiceStats,
    StatsSnapshot,
)
from stream_monitor.pipeline.lifecycle import Observation

LABELS = {spec.name: spec.labels for spec in METRICS}


def _alert(model: str, severity: Severity, status: Status) -> Alert:
    return Alert.build(
        model_id=model,
        kind=AlertKind.COVARIATE_DRIFT,
        signal="num_00",
        severity=severity,
        status=status,
        detector="psi",
        statistic=0.6,
        threshold=0.25,
        window=WindowInfo(0.0, 300.0, 2000),
        episode_start_ts=300.0,
        detected_at=301.0,
        message="num_00 shifted",
    )


def populated() -> ServiceStats:
    """Every family with known values."""
    s = ServiceStats()
    s.count_events("churn-v3", "features", "accepted", 7000)
    s.count_events("unrouted", "features", "rejected", 3)
    s.count_dead_letter("not_json", 2)
    s.count_dead_letter("missing_field")
    s.count_slow_decoded(4)
    s.count_alerts([_alert("churn-v3", Severity.CRITICAL, Status.FIRING)] * 2)
    s.count_alerts([_alert("churn-v3", Severity.CRITICAL, Status.RESOLVED)])
    s.count_delivery_failure()
    hot = Observation(AlertKind.COVARIATE_DRIFT, "num_00", Severity.CRITICAL, "psi", 0.6, 0.25, 0.1)
    cusum = Observation(AlertKind.COVARIATE_DRIFT, "num_00", None, "cusum", 2.0, 5.0, 5.0)
    calm = Observation(AlertKind.PREDICTION_DRIFT, "score", None, "psi", 0.01, 0.1, 0.1)
    s.record_observations("churn-v3", [hot, cusum, calm], {("covariate_drift", "num_00"): "critical"})
    s.set_window("churn-v3", 0.25, 7)
    s.set_lag("features", 0, 12)
    s.set_lag("features", 1, 0)
    s.observe_latency("features", [1] + [0] * (len(LATENCY_BUCKETS) - 1) + [2], 7200.5)
    s.observe_batch("engine", 0.003)
    s.observe_batch("engine", 0.2)
    s.set_agent("fold", True)
    s.set_agent("detect", False)
    s.set_restoring(False)
    return s


def families(stats: ServiceStats) -> dict[str, list[Sample]]:
    """Parsed exposition: samples by family name (the parser names counter families without ``_total``)."""
    text = generate_text(create_registry(stats, process=False))
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(f: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The one sample ``name{labels}`` of parsed families ``f``."""
    samples = f[re.sub(r"(_total|_bucket|_count|_sum)$", "", name)]
    hits = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples in {samples}"
    return hits[0]


# ---- exposition --------------------------------------------------------------------------------------------
def test_exposition_parses_with_every_family_typed_and_documented() -> None:
    text = generate_text(create_registry(populated(), process=False))
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    for spec in METRICS:
        fam = parsed[spec.family]
        assert fam.type == spec.kind
        assert fam.documentation == spec.documentation
        for sample in fam.samples:
            keys = set(sample.labels) - {"le"}
            assert keys == set(spec.labels), f"{sample.name} has labels {keys}, expected {spec.labels}"


def test_names_follow_the_conventions() -> None:
    for spec in METRICS:
        assert spec.name.startswith("stream_monitor_")
        assert spec.name == spec.name.lower()
        assert (spec.kind == "counter") == spec.name.endswith("_total"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds"), "histograms here measure time, in seconds"
        assert not any(unit in spec.name for unit in ("_ms", "_milliseconds", "_minutes", "_percent"))
        assert "event_id" not in spec.labels, "never a per-event label"
    assert len({spec.name for spec in METRICS}) == len(METRICS)


def test_required_families_are_exported_with_their_labels() -> None:
    assert LABELS == {
        "stream_monitor_events_total": ("model", "stream", "outcome"),
        "stream_monitor_dead_letters_total": ("reason",),
        "stream_monitor_slow_decoded_total": (),
        "stream_monitor_alerts_total": ("model", "kind", "severity", "status"),
        "stream_monitor_alert_delivery_failures_total": (),
        "stream_monitor_drift_statistic": ("model", "kind", "signal", "detector"),
        "stream_monitor_drift_threshold": ("model", "kind", "signal", "detector"),
        "stream_monitor_drift_status": ("model", "kind", "signal"),
        "stream_monitor_window_fill_ratio": ("model",),
        "stream_monitor_windows_tested_total": ("model",),
        "stream_monitor_consumer_lag": ("topic", "partition"),
        "stream_monitor_event_latency_seconds": ("stream",),
        "stream_monitor_batch_duration_seconds": ("stage",),
        "stream_monitor_agent_up": ("agent",),
        "stream_monitor_restoring": (),
        "stream_monitor_outstanding_predictions": ("model",),
        "stream_monitor_join_state_bytes": ("model",),
        "stream_monitor_join_bytes_per_prediction": ("model",),
        "stream_monitor_label_coverage_ratio": ("model",),
        "stream_monitor_label_lag_seconds": ("model", "quantile"),
        "stream_monitor_performance_watermark_seconds": ("model",),
        "stream_monitor_predictions_evicted_total": ("model", "reason"),
        "stream_monitor_labels_stale_total": ("model",),
        "stream_monitor_labels_joined_total": ("model",),
        "stream_monitor_labels_unmatched_total": ("model", "reason"),
        "stream_monitor_duplicate_events_total": ("model", "stream"),
        "stream_monitor_label_overflow_total": (),
    }


def test_values_are_the_snapshot() -> None:
    f = families(populated())
    ev = "stream_monitor_events_total"
    assert value(f, ev, model="churn-v3", stream="features", outcome="accepted") == 7000
    assert value(f, ev, model="unrouted", stream="features", outcome="rejected") == 3
    assert value(f, "stream_monitor_dead_letters_total", reason="not_json") == 2
    assert value(f, "stream_monitor_dead_letters_total", reason="missing_field") == 1
    assert value(f, "stream_monitor_slow_decoded_total") == 4
    key = {"model": "churn-v3", "kind": "covariate_drift", "severity": "critical"}
    assert value(f, "stream_monitor_alerts_total", status="firing", **key) == 2
    assert value(f, "stream_monitor_alerts_total", status="resolved", **key) == 1
    assert value(f, "stream_monitor_alert_delivery_failures_total") == 1
    sig = {"model": "churn-v3", "kind": "covariate_drift", "signal": "num_00"}
    assert value(f, "stream_monitor_drift_statistic", detector="psi", **sig) == 0.6
    assert value(f, "stream_monitor_drift_statistic", detector="cusum", **sig) == 2
    assert value(f, "stream_monitor_drift_threshold", detector="psi", **sig) == 0.1
    assert value(f, "stream_monitor_drift_status", **sig) == 2
    score = {"model": "churn-v3", "kind": "prediction_drift", "signal": "score"}
    assert value(f, "stream_monitor_drift_status", **score) == 0
    assert value(f, "stream_monitor_window_fill_ratio", model="churn-v3") == 0.25
    assert value(f, "stream_monitor_windows_tested_total", model="churn-v3") == 7
    assert value(f, "stream_monitor_consumer_lag", topic="features", partition="0") == 12
    assert value(f, "stream_monitor_consumer_lag", topic="features", partition="1") == 0
    assert value(f, "stream_monitor_agent_up", agent="fold") == 1
    assert value(f, "stream_monitor_agent_up", agent="detect") == 0
    assert value(f, "stream_monitor_restoring") == 0
    assert value(f, "stream_monitor_label_overflow_total") == 0


def test_histograms_are_cumulative_with_inf_count_and_sum() -> None:
    f = families(populated())
    lat = f["stream_monitor_event_latency_seconds"]
    buckets = [(s.labels["le"], s.value) for s in lat if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    assert [v for _, v in buckets] == [1.0] * len(LATENCY_BUCKETS) + [3.0]
    assert value(f, "stream_monitor_event_latency_seconds_count", stream="features") == 3
    assert value(f, "stream_monitor_event_latency_seconds_sum", stream="features") == 7200.5
    batch = f["stream_monitor_batch_duration_seconds"]
    counts = [s.value for s in batch if s.name.endswith("_bucket")]
    assert len(counts) == len(BATCH_BUCKETS) + 1
    assert counts == sorted(counts)
    assert counts[-1] == 2
    assert value(f, "stream_monitor_batch_duration_seconds_bucket", stage="engine", le="0.005") == 1
    assert value(f, "stream_monitor_batch_duration_seconds_sum", stage="engine") == pytest.approx(0.203)


def test_empty_stats_expose_label_free_counters_at_zero() -> None:
    f = families(ServiceStats())
    assert value(f, "stream_monitor_alert_delivery_failures_total") == 0
    assert value(f, "stream_monitor_label_overflow_total") == 0
    assert value(f, "stream_monitor_restoring") == 1
    assert f["stream_monitor_events"] == []


def test_process_and_platform_collectors_are_included() -> None:
    text = generate_text(create_registry(ServiceStats()))
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names
    assert any(n.startswith("python_gc_") for n in names)


def test_own_registry_never_the_global_one() -> None:
    stats = ServiceStats()
    stats.count_events("m", "features", "accepted", 1)
    a, b = create_registry(stats), create_registry(stats)  # two registries: no duplicate-name error
    assert a is not b
    assert a is not REGISTRY
    assert "stream_monitor_" not in generate_text(REGISTRY)


def test_scrape_reads_a_snapshot_not_the_live_state() -> None:
    stats = ServiceStats()
    stats.count_events("m", "features", "accepted", 1)
    registry = create_registry(stats, process=False)
    first = generate_text(registry)
    stats.count_events("m", "features", "accepted", 1)
    assert 'outcome="accepted",stream="features"} 1.0' in first
    assert 'outcome="accepted",stream="features"} 2.0' in generate_text(registry)


# ---- bounded cardinality -----------------------------------------------------------------------------------
def test_label_sets_are_capped_and_overflow_is_counted() -> None:
    cap = 10
    stats = ServiceStats(max_series=cap)
    for i in range(100):
        stats.count_events(f"model-{i}", "features", "accepted", 1)
        stats.record_observations(
            "m",
            [Observation(AlertKind.COVARIATE_DRIFT, f"feature-{i}", None, "psi", 0.01, 0.1, 0.1)],
            {},
        )
    f = families(stats)
    events = f["stream_monitor_events"]
    assert len(events) == cap + 1
    overflow = {"model": OVERFLOW, "stream": OVERFLOW, "outcome": OVERFLOW}
    assert value(f, "stream_monitor_events_total", **overflow) == 90
    assert sum(s.value for s in events) == 100, "no event is lost, only folded"
    for family in ("drift_statistic", "drift_threshold", "drift_status"):
        assert len(f[f"stream_monitor_{family}"]) == cap + 1
    # 90 folded event updates + 90 folded (statistic and status) updates
    assert value(f, "stream_monitor_label_overflow_total") == 270
    more = ServiceStats(max_series=cap)
    for i in range(1000):
        more.count_events(f"model-{i}", "features", "accepted", 1)
    assert len(families(more)["stream_monitor_events"]) == cap + 1, "a longer stream adds no series"


# ---- the HTTP server ---------------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, ServiceStats]]:
    stats = populated()
    srv = start_metrics_server(stats, "127.0.0.1", 0)
    try:
        yield srv, stats
    finally:
        srv.stop()


def get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_metrics_endpoint_serves_the_text_format(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, _ = server
    status, ctype, body = get(f"{srv.url}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {spec.family for spec in METRICS} <= names
    assert "process_cpu_seconds" in names


def test_metrics_endpoint_speaks_openmetrics_when_asked(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, _ = server
    status, ctype, body = get(f"{srv.url}/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert ctype.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_healthz_is_ok_while_the_process_runs(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, stats = server
    assert get(f"{srv.url}/healthz")[0] == 200
    stats.set_agent("detect", False)
    stats.set_restoring(True)
    assert get(f"{srv.url}/healthz")[0] == 200, "liveness does not depend on readiness"


def test_readyz_follows_stats_ready(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, stats = server
    status, _, body = get(f"{srv.url}/readyz")
    assert (status, body.strip()) == (503, "agent down: detect")
    stats.set_agent("detect", True)
    status, _, body = get(f"{srv.url}/readyz")
    assert (status, body.strip()) == (200, "ready")
    stats.set_restoring(True)
    status, _, body = get(f"{srv.url}/readyz")
    assert (status, body.strip()) == (503, "restoring state")
    assert not stats.ready()


def test_readyz_before_any_agent_started() -> None:
    stats = ServiceStats()
    stats.set_restoring(False)
    with start_metrics_server(stats, "127.0.0.1", 0) as srv:
        status, _, body = get(f"{srv.url}/readyz")
    assert (status, body.strip()) == (503, "no agent started yet")


def test_unknown_paths_are_404(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, _ = server
    assert get(f"{srv.url}/")[0] == 404
    assert get(f"{srv.url}/metrics/../debug")[0] == 404


def test_binds_only_the_given_address(server: tuple[MetricsServer, ServiceStats]) -> None:
    srv, _ = server
    assert srv.host == "127.0.0.1"
    assert srv.port > 0
    assert inspect.signature(start_metrics_server).parameters["host"].default == "127.0.0.1"
    assert ServiceConfig().bind_host == "127.0.0.1"
    other = _non_loopback_ipv4()
    if other is not None:  # a machine with a network interface: the port must not answer there
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, srv.port), timeout=2).close()


def _non_loopback_ipv4() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent, only a route is chosen
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_port_zero_and_stop_frees_the_port() -> None:
    stats = ServiceStats()
    srv = start_metrics_server(stats, "127.0.0.1", 0)
    port = srv.port
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = start_metrics_server(stats, "127.0.0.1", port)  # the port is free again
    again.stop()


def test_a_taken_port_is_a_clear_error() -> None:
    stats = ServiceStats()
    with (
        start_metrics_server(stats, "127.0.0.1", 0) as srv,
        pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{srv.port}"),
    ):
        start_metrics_server(stats, "127.0.0.1", srv.port)


# ---- scraping does not hold the writer up ------------------------------------------------------------------
def _crowded(series: int) -> ServiceStats:
    stats = ServiceStats(max_series=series)
    observations = [
        Observation(AlertKind.COVARIATE_DRIFT, f"f{i}", None, "psi", 0.01, 0.1, 0.1) for i in range(series)
    ]
    stats.record_observations("m", observations, {})
    for i in range(series):
        stats.count_events(f"m{i % 50}", "features", f"o{i}", 1)
    return stats


def test_snapshot_holds_the_lock_briefly_at_full_cardinality() -> None:
    stats = _crowded(2000)  # the default cap, in four families
    timings = []
    for _ in range(20):
        t0 = time.perf_counter()
        stats.snapshot()
        timings.append(time.perf_counter() - t0)
    assert statistics.median(timings) < 0.005, f"snapshot (under the writer's lock) took {timings}"


def test_writer_is_not_blocked_by_concurrent_scrapes() -> None:
    stats = _crowded(2000)
    registry = create_registry(stats, process=False)
    stop = threading.Event()
    scrapes = 0

    def scrape() -> None:
        nonlocal scrapes
        while not stop.is_set():
            generate_text(registry)
            scrapes += 1

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        waits = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline or scrapes < 3:
            t0 = time.perf_counter()
            stats.count_events("m0", "features", "accepted", 1)
            waits.append(time.perf_counter() - t0)
            time.sleep(0.0005)
    finally:
        stop.set()
        scraper.join()
    waits.sort()
    p99 = waits[int(len(waits) * 0.99)]
    # A whole scrape (~8,000 samples) takes far longer than this; the writer only ever waits for the
    # snapshot copy (and the GIL's switch interval).
    assert scrapes >= 3
    assert p99 < 0.02, f"writer p99 wait {p99 * 1000:.1f} ms over {len(waits)} writes and {scrapes} scrapes"


def test_a_failing_collector_is_a_500_not_a_dead_endpoint() -> None:
    class Broken(ServiceStats):
        def snapshot(self) -> Any:
            raise RuntimeError("boom")

    stats = Broken()
    with start_metrics_server(stats, "127.0.0.1", 0) as srv:
        status, _, body = get(f"{srv.url}/metrics")
        assert (status, body.strip()) == (500, "scrape failed: RuntimeError")
        assert get(f"{srv.url}/healthz")[0] == 200


def test_snapshot_is_a_full_independent_copy() -> None:
    stats = populated()
    snap, live = stats.snapshot(), stats._snap
    for f in dataclasses.fields(StatsSnapshot):  # a field added later must be copied too
        copied, original = getattr(snap, f.name), getattr(live, f.name)
        assert copied == original, f.name
        if isinstance(original, dict):
            assert copied is not original, f.name
            for key, value in original.items():
                if isinstance(value, Histogram):
                    assert copied[key] is not value, f.name


def test_label_join_figures_are_exported_per_model() -> None:
    from prometheus_client import generate_latest

    from stream_monitor.adapters.prometheus.metrics import create_registry
    from stream_monitor.pipeline.joiner import PredictionLabelJoiner

    joiner = PredictionLabelJoiner(ttl=100.0, max_outstanding=1000)
    joiner.add_predictions(
        ["a", "b", "c", "c"], [0.0, 1.0, 2.0, 2.0], [1.0, 0.0, 1.0, 1.0], [0.9, 0.2, 0.7, 0.7]
    )
    joiner.add_labels(["a"], [30.0], [1.0])
    joiner.expire(1000.0)
    joiner.add_labels(["b"], [1001.0], [0.0])  # its prediction expired: unmatched
    stats = ServiceStats()
    stats.set_labels("m", {**joiner.stats().as_dict(), "judged_until": 1763766000.0})
    text = generate_latest(create_registry(stats, process=False)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("stream_monitor_outstanding_predictions", (("model", "m"),))] == 0
    assert samples[("stream_monitor_predictions_evicted_total", (("model", "m"), ("reason", "ttl")))] == 2
    assert (
        samples[("stream_monitor_duplicate_events_total", (("model", "m"), ("stream", "predictions")))] == 1
    )
    assert samples[("stream_monitor_labels_joined_total", (("model", "m"),))] == 1
    unmatched = {
        r: samples[("stream_monitor_labels_unmatched_total", (("model", "m"), ("reason", r)))]
        for r in ("prediction_evicted", "early_ttl", "early_capacity")
    }
    assert unmatched == {"prediction_evicted": 1, "early_ttl": 0, "early_capacity": 0}
    assert samples[("stream_monitor_label_coverage_ratio", (("model", "m"),))] == pytest.approx(1 / 3)
    assert samples[("stream_monitor_performance_watermark_seconds", (("model", "m"),))] == 1763766000.0
    assert samples[
        ("stream_monitor_label_lag_seconds", (("model", "m"), ("quantile", "0.5")))
    ] == pytest.approx(30, rel=0.15)


def test_the_join_state_and_its_bytes_per_waiting_prediction_are_exported() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from stream_monitor.adapters.prometheus.metrics import create_registry
    from stream_monitor.pipeline.joiner import PredictionLabelJoiner

    joiner = PredictionLabelJoiner(ttl=1e6, max_outstanding=100_000)
    n = 50_000
    ids = [f"e{i}" for i in range(n)]
    joiner.add_predictions(ids, np.arange(n, dtype=float), np.ones(n), np.full(n, 0.9))
    figures = joiner.stats().as_dict()
    stats = ServiceStats()
    stats.set_labels("m", figures)
    text = generate_latest(create_registry(stats, process=False)).decode()
    samples = {
        s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.labels
    }
    assert (
        samples["stream_monitor_join_state_bytes"]
        == figures["state_bytes"]
        > figures["prediction_table_bytes"]
    )
    per = samples["stream_monitor_join_bytes_per_prediction"]
    # 28 bytes per bucket (key, time, class, score) at a load between 0.3 and 0.5 after the last growth
    assert per == figures["prediction_table_bytes"] / n
    assert 28 / 0.5 <= per <= 28 / 0.15
