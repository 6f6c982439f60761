"""The tree is the architecture: each layer imports only layers below it, and only the edges import edge libraries.

Ranks, lowest first (docs/architecture.md draws the same picture):

0 ``core`` events, decoding, alerts, errors, clock
1 ``config.schema`` the frozen, validated configuration (values only, no files)
2 ``stats`` sketches, distances, profiles
3 ``detectors`` sequential tests, River wrappers
4 ``pipeline`` windows, folding, join, detection, lifecycle, the model pipeline
5 ``adapters.*``, ``config.loading``, ``config.template``, ``devtools``, ``report`` edges, file formats, the
  HTML report (its data model, ``report.model``, and what builds it do no file I/O either)
6 ``app`` the composition root and the jobs built on it
7 ``cli`` argument parsing on top

A module may import its own layer or any lower one. ``devtools`` (synthetic streams, the local broker) is for the
demo and the tests; nothing the service runs imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "stream_monitor"
EDGE_LIBRARIES = ("faust", "mode", "confluent_kafka", "aiokafka", "prometheus_client")
RANKS = (
    ("core", 0),
    ("config.schema", 1),
    ("stats", 2),
    ("detectors", 3),
    ("pipeline", 4),
    ("adapters", 5),
    ("config", 5),
    ("devtools", 5),
    ("report", 5),
    ("app", 6),
    ("cli", 7),
)
# Layers whose code the running service executes; they must not reach development helpers.
SERVICE_LAYERS = ("core", "config", "stats", "detectors", "pipeline", "adapters")
# Modules above the pure layers that must not touch files either: the command that calls them reads the files.
PURE_EDGE_MODULES = ("report.model", "report.build", "report.histograms", "report.performance_series")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int | None:
    """The rank of the most specific layer prefix of a module inside the package (``None`` for the root)."""
    for prefix, rank in RANKS:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against the file's package)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(["stream_monitor", *base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
    return names


def _internal(names: set[str]) -> set[str]:
    return {n.removeprefix("stream_monitor.") for n in names if n.startswith("stream_monitor.")}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_layer_imports_a_higher_one() -> None:
    offenders = {}
    for path in _sources():
        module = _module_name(path)
        own = _rank(module)
        if own is None:
            continue
        upward = sorted(t for t in _internal(_imports(path)) if (_rank(t) or 0) > own)
        if upward:
            offenders[module] = upward
    assert offenders == {}


def test_the_service_never_imports_development_helpers() -> None:
    offenders = {}
    for path in _sources():
        module = _module_name(path)
        if module.split(".")[0] not in SERVICE_LAYERS:
            continue
        dev = sorted(t for t in _internal(_imports(path)) if t.startswith("devtools"))
        if dev:
            offenders[module] = dev
    assert offenders == {}


def test_only_edges_import_edge_libraries() -> None:
    offenders = {}
    for path in _sources():
        module = _module_name(path)
        if (_rank(module) or 0) >= 5 and not module.startswith("config"):
            continue
        bad = sorted({n.split(".")[0] for n in _imports(path)} & set(EDGE_LIBRARIES))
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_only_the_adapter_imports_river() -> None:
    users = [_module_name(p) for p in _sources() if any(n.split(".")[0] == "river" for n in _imports(p))]
    assert users == ["detectors.river_adapter"]


def test_the_pure_layers_do_no_file_io() -> None:
    """Files are an edge: the pure layers take bytes and values, never paths to open."""
    offenders = {}
    for path in _sources():
        module = _module_name(path)
        if (_rank(module) or 0) > 4 and module not in PURE_EDGE_MODULES:
            continue
        text = path.read_text()
        calls = [
            c for c in ("open(", ".read_text(", ".write_text(", ".read_bytes(", ".write_bytes(") if c in text
        ]
        if calls:
            offenders[module] = calls
    assert offenders == {}


def test_the_check_itself_sees_imports() -> None:
    assert "numpy" in _imports(PACKAGE / "stats" / "sketches.py")
    assert (
        _rank("config.schema") == 1 and _rank("config.loading") == 5 and _rank("adapters.kafka.worker") == 5
    )
    assert any(t.startswith("core") for t in _internal(_imports(PACKAGE / "pipeline" / "folding.py")))
    assert _rank("report.model") == 5 and all(
        (PACKAGE / f"{m.replace('.', '/')}.py").exists() for m in PURE_EDGE_MODULES
    )
