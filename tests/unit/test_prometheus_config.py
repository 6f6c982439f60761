"""config/prometheus.yml and config/alert_rules.yml pass promtool, and the rule unit tests pass.

promtool comes with Debian's ``prometheus`` package, which scripts/ci_setup.sh installs: a missing promtool is
a broken setup and fails here with the command to fix it, never a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stream_monitor.adapters.prometheus.metric_specs import METRICS

CONFIG = Path(__file__).resolve().parents[2] / "config"
# Metrics Prometheus itself adds to every target (not exported by us).
SCRAPE_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `bash scripts/ci_setup.sh` (Debian package `prometheus`)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=CONFIG, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alert_rules.yml"),
        ("test", "rules", "alert_rules_test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    proc = _run(*args)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "SUCCESS" in proc.stdout


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load((CONFIG / "alert_rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_cover_the_required_conditions_on_our_metrics() -> None:
    rules = _rules()
    names = {str(r["alert"]) for r in rules}
    assert {
        "StreamMonitorDriftCritical",
        "StreamMonitorDeadLetters",
        "StreamMonitorConsumerLag",
        "StreamMonitorAgentDown",
        "StreamMonitorAlertDeliveryFailures",
    } <= names
    exported = {spec.name for spec in METRICS}
    for rule in rules:
        used = set(re.findall(r"\b(stream_monitor_[a-z_]+)\b", str(rule["expr"])))
        assert used <= exported, f"{rule['alert']} uses metrics we do not export: {used - exported}"
        assert used or set(re.findall(r"\b([a-z_]+)\{", str(rule["expr"]))) <= SCRAPE_METRICS
        labels = rule["labels"]
        assert isinstance(labels, dict)
        assert labels["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert {"summary", "description"} <= annotations.keys()


def test_every_alert_has_a_promtool_unit_test() -> None:
    doc = yaml.safe_load((CONFIG / "alert_rules_test.yml").read_text())
    tested_firing = {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {str(r["alert"]) for r in _rules()} == tested_firing


def test_prometheus_loads_the_rules_file_from_its_own_directory() -> None:
    doc = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    assert doc["rule_files"] == ["alert_rules.yml"]
    assert (CONFIG / "alert_rules.yml").is_file()
