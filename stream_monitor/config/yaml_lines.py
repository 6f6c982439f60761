"""YAML read as ``yaml.safe_load`` reads it, keeping the line of every key, so each problem names its line.

Tags other than plain data (``!!python/object`` and the like) are refused before anything is constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stream_monitor.config.problems import _format_loc, _Problem
from stream_monitor.core.errors import ConfigError


class _YamlDocument:
    """A YAML file read as ``yaml.safe_load`` reads it, plus the line of every key, by config path."""

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                self.data: Any = None
                return
            tags = _unknown_tags(root)
            if tags:
                raise ConfigError(*_problems_error(tags, "", None))
            self.data = loader.construct_document(root)  # still refuses what safe_load refuses
        finally:
            loader.dispose()
        self._record(root)  # after construction: merge keys (<<) have been flattened into the nodes

    def _record(self, root: yaml.Node) -> None:
        self.lines["(top level)"] = root.start_mark.line + 1
        seen: set[int] = set()
        stack: list[tuple[tuple[int | str, ...], yaml.Node]] = [((), root)]
        while stack:
            loc, node = stack.pop()
            if id(node) in seen:  # an alias: its keys are recorded under the anchor's path
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        child = (*loc, str(key.value))
                        self.lines[_format_loc(child)] = key.start_mark.line + 1  # a repeated key: the last
                        stack.append((child, value))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    self.lines[_format_loc((*loc, i))] = item.start_mark.line + 1
                    stack.append(((*loc, i), item))

    def line_of(self, path: str) -> int | None:
        """The line of ``path``'s key, or of its nearest parent that is in the file."""
        while path not in self.lines:
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return self.lines.get("(top level)")
            path = path[:cut]
        return self.lines[path]


def _unknown_tags(root: yaml.Node) -> list[_Problem]:
    # What safe_load constructs, plus the merge key (<<) its constructor expands itself.
    allowed = {*yaml.SafeLoader.yaml_constructors, "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"}
    found: list[_Problem] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in allowed:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            found.append(
                _Problem(
                    "",
                    f"unsafe or unknown YAML tag {tag} refused: a config holds plain data only",
                    node.start_mark.line + 1,
                )
            )
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


def _problems_error(
    problems: list[_Problem], source: str, doc: _YamlDocument | None
) -> tuple[list[tuple[str, str]], str, list[int | None]]:
    """``ConfigError`` arguments: each problem with its line (from the YAML document, where there is one)."""
    at: list[int | None] = []
    for p in problems:
        if p.line is not None:
            at.append(p.line)
        elif doc is not None:
            at.append(doc.line_of(p.path))
        else:
            at.append(None)
    return [(p.path, p.message) for p in problems], source, at


def _read_yaml(path: Path) -> _YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([("", f"cannot read the file: {reason}")], str(path)) from None
    try:
        doc = _YamlDocument(text)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(path), exc.lines) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem = f"unsafe or unknown YAML tag refused: {problem}"
        else:
            problem = f"invalid YAML: {problem}"
        if mark is not None:
            problem += f" (column {mark.column + 1})"
        raise ConfigError([("", str(problem))], str(path), [mark.line + 1 if mark else None]) from None
    return doc
