"""docker-compose.yml, the Dockerfile and config/ agree with each other (Docker itself is not needed).

Every name, port and path one file expects of another is checked here: the services, the mounted files
that must exist in the repository, the monitor's config (validated as ``stream-monitor config validate``
does), its bind address and metrics port against the published port, the Kafka listener the config points
at, Prometheus' scrape target and rule file location, Grafana's datasource and dashboard paths, and the
producer's command line.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from stream_monitor.adapters.prometheus.metric_specs import METRICS
from stream_monitor.cli import main as cli
from stream_monitor.config.loading import load_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
GRAFANA = REPO / "config" / "grafana"


def mounts(service: str) -> dict[str, Path]:
    """Container path -> repository path of every bind mount of ``service``."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            out[target] = REPO / source
    return out


def host_path(service: str, container_path: str) -> Path:
    """The repository file a container path of ``service`` is mounted from."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}: {mounts(service)}")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def published(service: str) -> list[tuple[str, int, int]]:
    """``(host address, host port, container port)`` of every published port."""
    out = []
    for spec in SERVICES[service].get("ports", []):
        address, host_port, container_port = str(spec).split(":")
        out.append((address, int(host_port), int(container_port)))
    return out


MONITOR_CMD: list[str] = SERVICES["monitor"]["command"]
MONITOR_CONFIG = host_path("monitor", option(MONITOR_CMD, "--config"))


def test_the_stack_has_its_services() -> None:
    assert set(SERVICES) == {"kafka", "topics", "monitor", "producer", "prometheus", "grafana"}
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image, f"{name}: pin the image tag"
        assert not image.endswith(":latest"), f"{name}: pin the image tag"
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")


def test_every_mounted_path_exists_in_the_repository() -> None:
    for name in SERVICES:
        for target, source in mounts(name).items():
            assert source.exists(), (
                f"{name} mounts {source.relative_to(REPO)} at {target}, which does not exist"
            )


def test_every_published_port_is_bound_to_loopback_only() -> None:
    for name in SERVICES:
        for address, _, _ in published(name):
            assert address == "127.0.0.1", f"{name} publishes a port on {address}"


def test_the_mounted_monitor_config_validates() -> None:
    result = CliRunner().invoke(cli, ["config", "validate", str(MONITOR_CONFIG)])
    assert result.exit_code == 0, result.output
    assert MONITOR_CONFIG == REPO / "config" / "stream-monitor.yaml"


def test_one_config_for_topic_creation_the_monitor_and_the_producer() -> None:
    topics_cmd, producer_cmd = SERVICES["topics"]["command"], SERVICES["producer"]["command"]
    assert topics_cmd[:3] == ["stream-monitor", "topics", "create"]
    assert MONITOR_CMD[:2] == ["stream-monitor", "run"]
    assert host_path("topics", option(topics_cmd, "--config")) == MONITOR_CONFIG
    assert host_path("producer", option(producer_cmd, "--config")) == MONITOR_CONFIG
    for name in ("monitor", "producer"):
        assert SERVICES[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_cli_commands_the_stack_runs_exist() -> None:
    runner = CliRunner()
    for command in (SERVICES["topics"]["command"], MONITOR_CMD):
        args = [a for a in command[1:] if not a.startswith("--") and not a.startswith("/")]
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, f"`stream-monitor {' '.join(args)}` is missing: {result.output}"


def test_monitor_listens_where_compose_and_prometheus_expect_it() -> None:
    config = load_config(MONITOR_CONFIG)
    port = config.service.metrics_port
    assert config.service.bind_host == "0.0.0.0", "inside the container, or Prometheus cannot reach it"
    assert [(p[1], p[2]) for p in published("monitor")] == [(port, port)]
    assert f"127.0.0.1:{port}/healthz" in " ".join(SERVICES["monitor"]["healthcheck"]["test"])
    assert re.search(rf"^EXPOSE {port}$", (REPO / "Dockerfile").read_text(), re.M)
    prometheus = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "stream-monitor")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": [f"monitor:{port}"]}]


def test_the_monitor_config_points_at_the_kafka_service_listener() -> None:
    config = load_config(MONITOR_CONFIG)
    env = SERVICES["kafka"]["environment"]
    host, port = config.kafka.bootstrap_servers.split(":")
    assert host in {"kafka", SERVICES["kafka"].get("hostname")}
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listener = next(name for name, address in advertised.items() if address == f"{host}:{port}")
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners[listener] == f":{port}"
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    voter_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].rsplit(":", 1)[1]
    assert listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]] == f":{voter_port}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", (
        "topics come from `stream-monitor topics create`"
    )
    assert config.topics.replication_factor == 1, "one broker"


def test_prometheus_gets_its_config_and_rules_where_it_looks() -> None:
    command: list[str] = SERVICES["prometheus"]["command"]
    config_file = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    assert host_path("prometheus", config_file) == REPO / "config" / "prometheus.yml"
    prometheus = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        in_container = PurePosixPath(config_file).parent / rule_file
        assert host_path("prometheus", str(in_container)) == REPO / "config" / rule_file


def test_grafana_finds_prometheus_and_the_dashboards() -> None:
    assert host_path("grafana", "/etc/grafana/provisioning") == GRAFANA / "provisioning"
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    url = urlsplit(source["url"])
    listen = next(a for a in SERVICES["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert (url.hostname, url.port) == ("prometheus", int(listen.rsplit(":", 1)[1]))
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "stream-monitor.yml").read_text())
    [provider] = providers["providers"]
    assert host_path("grafana", provider["options"]["path"]) == GRAFANA / "dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file()


def test_the_dashboard_queries_our_metrics() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "stream-monitor.json").read_text())
    assert dashboard["uid"] == "stream-monitor"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exported = {spec.name for spec in METRICS} | {
        f"{spec.name}_{suffix}"
        for spec in METRICS
        if spec.kind == "histogram"
        for suffix in ("bucket", "sum", "count")
    }
    used: set[str] = set()
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            used |= set(re.findall(r"\b(stream_monitor_[a-z_]+)\b", target["expr"]))
    assert used <= exported, f"not exported: {used - exported}"
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("drift status", "drift statistic", "events per second", "dead letters", "lag", "latency"):
        assert topic in titles
    must_show = {
        "stream_monitor_drift_status",
        "stream_monitor_drift_statistic",
        "stream_monitor_events_total",
    }
    assert must_show | {"stream_monitor_dead_letters_total", "stream_monitor_consumer_lag"} <= used


def test_the_producer_runs_the_script_the_image_holds() -> None:
    command: list[str] = SERVICES["producer"]["command"]
    assert command[0] == "python"
    script = command[1]
    assert (REPO / script).is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)[-1]
    assert re.search(rf"^COPY {re.escape(script)} \./{re.escape(script)}$", dockerfile, re.M), (
        f"the image must hold {script} under {workdir}"
    )
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import produce_synthetic
    finally:
        sys.path.remove(str(REPO / "scripts"))
    args = produce_synthetic.build_parser().parse_args(command[2:])
    assert args.drift_after == 60.0


def test_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "stream_monitor", "scripts"):
        assert needed not in ignored


@pytest.mark.parametrize("service", ["topics", "monitor", "producer"])
def test_our_services_build_the_local_image(service: str) -> None:
    assert SERVICES[service]["image"] == "stream-monitor:local"
    assert SERVICES[service]["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_the_compose_reference_profile_is_built_from_the_examples(tmp_path: Path) -> None:
    out = tmp_path / "reference.json"
    ref = REPO / "examples" / "reference"
    args = ["reference", "build", "--out", str(out)]
    for stream in ("features", "predictions", "labels"):
        args += [f"--{stream}", str(ref / f"{stream}.jsonl")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (REPO / "config" / "reference.json").read_bytes(), (
        "config/reference.json is stale: rerun `stream-monitor reference build --features "
        "examples/reference/features.jsonl --predictions examples/reference/predictions.jsonl "
        "--labels examples/reference/labels.jsonl --out config/reference.json`"
    )
