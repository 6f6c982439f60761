"""docs/formats.md and docs/configuration.md are the repository's account of the wire formats and of every config
key: an alert kind, a rejection reason, a record field or a config key added without documentation fails here,
and so does a document that still sends readers to the DESIGN.md that is not in the repository."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter
from stream_monitor.adapters.kafka.clients import dead_letter_record
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import RETRAINING_SCHEMA, SCHEMA, Alert, AlertKind, RetrainingRequest
from stream_monitor.core.events import RejectReason
from stream_monitor.core.window_stats import SCHEMA as WINDOW_STATS_SCHEMA
from stream_monitor.core.window_stats import WindowStat

REPO = Path(__file__).resolve().parents[2]
FORMATS_PATH = REPO / "docs" / "formats.md"
CONFIGURATION_PATH = REPO / "docs" / "configuration.md"
FORMATS = FORMATS_PATH.read_text()
CONFIGURATION = CONFIGURATION_PATH.read_text()

# How docs/configuration.md writes a key of each mapping of config models.
PLACEHOLDERS = {"models": "<model_id>", "features": "<name>"}
REQUIRED = object()


# ---- helpers ---------------------------------------------------------------------------------------------------
def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation is (``X`` or ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [m for a in typing.get_args(annotation) if (m := _model_type(a)) is not None]
        assert len(inner) <= 1, f"a union of several config models: {annotation}"
        return inner[0] if inner else None
    return None


def _mapped_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of a ``dict[str, Model]`` annotation, if it is one."""
    if typing.get_origin(annotation) is dict:
        return _model_type(typing.get_args(annotation)[1])
    return None


def config_keys(
    model: type[BaseModel] = MonitorConfig, prefix: str = ""
) -> tuple[dict[str, FieldInfo], list[str]]:
    """Every key path reachable from ``model``: the leaves (with their field) and the sections (nested models,
    and the entries of mappings of models, as ``models.<model_id>``)."""
    leaves: dict[str, FieldInfo] = {}
    sections: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:  # base_dir: set by the loader from the file's folder, not a key of the file
            continue
        path = f"{prefix}{name}"
        nested, mapped = _model_type(field.annotation), _mapped_model(field.annotation)
        if nested is not None:
            sections.append(path)
            sub_leaves, sub_sections = config_keys(nested, f"{path}.")
        elif mapped is not None:
            assert name in PLACEHOLDERS, f"choose how configuration.md writes a key of {path!r}"
            leaves[path] = field
            entry = f"{path}.{PLACEHOLDERS[name]}"
            sections.append(entry)
            sub_leaves, sub_sections = config_keys(mapped, f"{entry}.")
        else:
            leaves[path] = field
            continue
        leaves.update(sub_leaves)
        sections.extend(sub_sections)
    return leaves, sections


LEAVES, SECTIONS = config_keys()


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows whose first cell is one backticked name: name -> cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"\| `([^`]+)` \|", line)
        if match:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert match.group(1) not in rows, f"{match.group(1)} has two rows"
            rows[match.group(1)] = cells
    return rows


def _section(text: str, heading: str, own_text_only: bool = False) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of the same or a higher level
    (``own_text_only``: up to the next heading of any level)."""
    level = 6 if own_text_only else len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    later = re.search(rf"^#{{1,{level}}} ", text[start:], re.MULTILINE)
    return text[start : start + later.start()] if later else text[start:]


def _default(field: FieldInfo) -> Any:
    return REQUIRED if field.is_required() else field.get_default(call_default_factory=True)


def _documented_default(cell: str) -> Any:
    if cell == "required":
        return REQUIRED
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"a default is one backticked YAML value or 'required', not {cell!r}"
    return yaml.safe_load(match.group(1))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation (but - and _) dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _markdown_files() -> list[Path]:
    return sorted(
        {*REPO.glob("*.md"), *(REPO / "docs").glob("**/*.md"), *(REPO / "examples").glob("**/*.md")}
    )


# ---- docs/formats.md -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(AlertKind), ids=str)
def test_every_alert_kind_has_its_section_or_is_listed_as_reserved(kind: AlertKind) -> None:
    described = re.findall(r"^#### `(\w+)`$", FORMATS, re.MULTILINE)
    reserved = _section(FORMATS, "#### Reserved kinds")
    assert kind.value in described or f"`{kind.value}`" in reserved, kind.value
    assert not (kind.value in described and f"`{kind.value}`" in reserved), f"{kind.value}: both?"


def test_every_rejection_reason_is_in_the_reasons_table_and_nothing_else() -> None:
    table = _rows(_section(FORMATS, "## Rejection reasons"))
    assert set(table) == {r.value for r in RejectReason}
    assert all(cells[1] for cells in table.values())


@pytest.mark.parametrize(
    ("heading", "record"),
    [
        ("## Alert events: `stream-monitor.alert/v1`", Alert),
        ("## Retraining requests: `stream-monitor.retraining-request/v1`", RetrainingRequest),
        ("## Window statistics: `stream-monitor.window-stats/v1`", WindowStat),
        ("### In replay (`--dead-letters-out`)", DeadLetter),
    ],
    ids=["alert", "retraining-request", "window-stats", "replay-dead-letter"],
)
def test_every_field_of_each_record_has_a_row(heading: str, record: type) -> None:
    table = _rows(_section(FORMATS, heading, own_text_only=True))
    fields = [f.name for f in dataclasses.fields(record)]
    assert [name for name in table if name in fields] == fields  # all of them, in the wire order
    assert set(table) <= set(fields)


def test_every_dead_letter_header_has_a_row() -> None:
    headers = re.findall(r'\(\s*"(\w+)",', inspect.getsource(dead_letter_record))
    assert headers == [
        "reason",
        "detail",
        "source_topic",
        "source_partition",
        "source_offset",
        "time",
        "value_bytes",
    ]
    assert list(_rows(_section(FORMATS, "### In the service"))) == headers


def test_the_schema_names_are_the_codes() -> None:
    assert f"`{SCHEMA}`" in FORMATS
    assert f"`{RETRAINING_SCHEMA}`" in FORMATS
    assert f"`{WINDOW_STATS_SCHEMA}`" in FORMATS


def test_the_json_examples_are_json_objects() -> None:
    blocks = re.findall(r"```json\n(.*?)```", FORMATS, re.DOTALL)
    assert len(blocks) >= 8
    decoder = json.JSONDecoder()
    for block in blocks:
        at = 0
        while at < len(block.rstrip()):
            record, end = decoder.raw_decode(block, at)
            assert isinstance(record, dict), block
            at = end + len(block[end:]) - len(block[end:].lstrip())


# ---- docs/configuration.md -------------------------------------------------------------------------------------
def test_the_walk_reaches_every_section_of_the_config() -> None:
    mappings_and_lists = {
        "kafka.client",
        "models",
        "models.<model_id>.features",
        "models.<model_id>.segments",
    }
    assert mappings_and_lists <= set(LEAVES)
    assert "models.<model_id>.features.<name>.test.statistic" in LEAVES
    assert {"models.<model_id>", "models.<model_id>.features.<name>", "models.<model_id>.performance"} <= set(
        SECTIONS
    )
    assert "base_dir" not in LEAVES


@pytest.mark.parametrize("path", list(LEAVES))
def test_every_config_key_has_one_row_with_its_default(path: str) -> None:
    rows = _rows(CONFIGURATION)
    assert path in rows, f"{path} is not documented in docs/configuration.md"
    _, kind, default, meaning = rows[path]
    assert kind and meaning
    assert _documented_default(default) == _default(LEAVES[path]), path


@pytest.mark.parametrize("path", SECTIONS)
def test_every_config_section_is_named(path: str) -> None:
    assert f"`{path}`" in CONFIGURATION, path


def test_configuration_documents_no_key_that_does_not_exist() -> None:
    assert set(_rows(CONFIGURATION)) <= set(LEAVES)


# ---- every document --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_sends_readers_to_design_md(doc: Path) -> None:
    assert "DESIGN.md" not in doc.read_text(), f"{doc.relative_to(REPO)} still refers to DESIGN.md"


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    for target, anchor in re.findall(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]*))?\)", doc.read_text()):
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.relative_to(REPO)} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
            where = f"{doc.relative_to(REPO)} links to {target}#{anchor}"
            assert anchor in {_slug(h) for h in headings}, f"{where}: no such heading"


def test_the_readme_links_both_documents() -> None:
    readme = (REPO / "README.md").read_text()
    assert "](docs/formats.md" in readme
    assert "](docs/configuration.md" in readme
