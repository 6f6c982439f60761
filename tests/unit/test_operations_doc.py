"""docs/operations.md documents every exported metric (with its labels and type) and every alerting rule."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stream_monitor.adapters.prometheus.metric_specs import METRICS

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "operations.md").read_text()


def _table_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `stream_monitor_") and len(cells) >= 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_metric_is_in_the_reference_table_with_its_type_and_labels() -> None:
    rows = _table_rows()
    assert set(rows) == {spec.name for spec in METRICS}
    for spec in METRICS:
        _, kind, labels, meaning = rows[spec.name][:4]
        assert kind == spec.kind
        if labels == "as above":
            continue
        assert re.findall(r"`(\w+)`", labels) == list(spec.labels), spec.name
        assert meaning


def test_every_alerting_rule_is_explained() -> None:
    doc = yaml.safe_load((REPO / "config" / "alert_rules.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert f"| `{rule['alert']}` |" in DOC, rule["alert"]
