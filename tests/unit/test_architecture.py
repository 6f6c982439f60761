"""The pure core never imports an edge library: it must run, and be tested, without Kafka or Prometheus."""

from __future__ import annotations

import ast
from pathlib import Path

PURE = ("core", "stats", "detectors", "monitoring")
FORBIDDEN = ("faust", "mode", "confluent_kafka", "aiokafka", "prometheus_client", "asyncio")
PACKAGE = Path(__file__).resolve().parents[2] / "stream_monitor"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_pure_core_imports_no_edge_library() -> None:
    offenders = {}
    for sub in PURE:
        for path in (PACKAGE / sub).rglob("*.py"):
            bad = _imports(path) & set(FORBIDDEN)
            if bad:
                offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_only_the_adapter_imports_river() -> None:
    users = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "river" in _imports(p) and p.name != "river_adapter.py"
    ]
    assert users == []


def test_the_check_itself_sees_imports() -> None:
    assert "numpy" in _imports(PACKAGE / "stats" / "sketches.py")
