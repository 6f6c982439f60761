"""A real Prometheus server scrapes the exporter while a real engine runs over a drifting stream.

The test starts Debian's ``prometheus`` binary on 127.0.0.1 (a free port, a temporary data directory, a 1 s
scrape and rule-evaluation interval, our ``config/alert_rules.yml``), drives the engine over
``examples/stream`` through :class:`EngineRecorder` into the exporter, and asks Prometheus' HTTP API:
``drift_status`` of ``num_00`` is first 0 (two clean windows), then 2 once the drifted windows are tested,
and the ``StreamMonitorDriftCritical`` rule fires for it. Every wait polls a condition against a deadline.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from stream_monitor.adapters.prometheus.metrics_server import MetricsServer, start_metrics_server
from stream_monitor.app.compose import build_engine
from stream_monitor.config.loading import load_config
from stream_monitor.pipeline.counters import ServiceStats
from stream_monitor.pipeline.recorder import EngineRecorder
from tests.engine_feed import COMPOSE_CONFIG, EXAMPLE_STREAM, REPO, STREAM_START, feed, merged_batches

DEADLINE = 30.0
NUM_00 = '{model="churn-v3",kind="covariate_drift",signal="num_00"}'
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        try:
            got = probe()
        except (OSError, urllib.error.URLError) as exc:  # not listening yet
            got, last = None, exc
        if got is not None:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out after {deadline:.0f} s waiting for {what} (last error: {last})")


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")


@pytest.fixture
def exporter() -> Iterator[tuple[MetricsServer, ServiceStats]]:
    stats = ServiceStats()
    server = start_metrics_server(stats, "127.0.0.1", 0)
    try:
        yield server, stats
    finally:
        server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: tuple[MetricsServer, ServiceStats]) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed: run `bash scripts/ci_setup.sh` (Debian package `prometheus`)"
        )
    server, _ = exporter
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(REPO / "config" / "alert_rules.yml")],
        "scrape_configs": [
            {"job_name": "stream-monitor", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:

        def ready() -> bool | None:
            prom.check_alive()
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                return True if resp.status == 200 else None

        wait_for("prometheus /-/ready", ready)
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _status(prom: Prometheus, expected: float) -> Callable[[], bool | None]:
    def probe() -> bool | None:
        prom.check_alive()
        result = prom.instant(f"stream_monitor_drift_status{NUM_00}")
        return True if result and float(result[0]["value"][1]) == expected else None

    return probe


def test_prometheus_sees_the_drift_status_go_critical(
    prometheus: Prometheus, exporter: tuple[MetricsServer, ServiceStats]
) -> None:
    server, stats = exporter
    engine = build_engine(load_config(COMPOSE_CONFIG))
    recorder = EngineRecorder(stats, engine)
    stats.set_agent("engine", True)
    stats.set_restoring(False)
    batches = merged_batches(EXAMPLE_STREAM, batch=500)

    # Before the drift (+600 s): two clean windows tested, Prometheus scrapes status 0.
    feed(engine, recorder, batches, until_ts=STREAM_START + 650)
    assert stats.snapshot().windows_tested["churn-v3"] >= 2
    wait_for("drift_status of num_00 == 0 in Prometheus", _status(prometheus, 0.0))
    target = prometheus.api("targets")["activeTargets"][0]
    assert target["health"] == "up"
    assert target["scrapeUrl"] == f"http://127.0.0.1:{server.port}/metrics"

    # The rest of the stream: num_00 has shifted by 0.75 sd; the next tested window is critical.
    feed(engine, recorder, batches)
    wait_for("drift_status of num_00 == 2 in Prometheus", _status(prometheus, 2.0))

    def firing() -> bool | None:
        for alert in prometheus.api("alerts")["alerts"]:
            labels = alert["labels"]
            if (labels["alertname"], labels.get("signal"), alert["state"]) == (
                "StreamMonitorDriftCritical",
                "num_00",
                "firing",
            ):
                return True
        return None

    wait_for("StreamMonitorDriftCritical firing for num_00", firing)
    stable = prometheus.instant('stream_monitor_drift_status{model="churn-v3",signal="num_02"}')
    assert stable, "num_02 is tested (by several kinds of test) ..."
    assert {float(r["value"][1]) for r in stable} == {0.0}, "... and never drifts"

    def all_features_counted() -> bool | None:
        got = prometheus.instant('sum(stream_monitor_events_total{stream="features",outcome="accepted"})')
        return True if got and float(got[0]["value"][1]) == 7200 else None

    wait_for("all 7,200 feature events counted in Prometheus", all_features_counted)


def test_every_dashboard_query_is_valid_promql(prometheus: Prometheus) -> None:
    dashboard = json.loads((REPO / "config" / "grafana" / "dashboards" / "stream-monitor.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for expr in exprs:
        concrete = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
        assert not re.search(r"\$\w", concrete), f"unsubstituted variable in {expr}"
        prometheus.api("query", query=concrete)  # raises on a parse error (HTTP 400)
