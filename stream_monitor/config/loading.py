"""Config files: YAML read as ``yaml.safe_load`` reads it, keeping the line of every key, validated into a
:class:`~stream_monitor.config.schema.MonitorConfig`, and every problem reported at once with its path, its line
and, for a misspelt key or feature, the closest valid one.

:func:`check_config_file` (``config validate``) also asks each model's reference file: unreadable, no such model,
features and segments it lacks, statistics a categorical signal cannot take.

The parts: the YAML with its lines (``yaml_lines.py``), pydantic's errors as printed problems (``problems.py``),
the reference file's checks (``reference_checks.py``); this module puts them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream_monitor.config.problems import _validate
from stream_monitor.config.reference_checks import _reference_problems
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.config.yaml_lines import _problems_error, _read_yaml
from stream_monitor.core.errors import ConfigError


def parse_config(raw: Any, source: str = "config", base_dir: str | Path = ".") -> MonitorConfig:
    """Validate an already-loaded mapping; every problem is reported with its path."""
    config, problems = _validate(raw, base_dir)
    if problems:
        raise ConfigError(*_problems_error(problems, source, None))
    assert config is not None
    return config


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a YAML config file: every schema problem, each with its path and line."""
    p = Path(path)
    doc = _read_yaml(p)
    config, problems = _validate(doc.data, p.parent)
    if problems:
        raise ConfigError(*_problems_error(problems, str(p), doc))
    assert config is not None
    return config


def check_config_file(path: str | Path) -> MonitorConfig:
    """Everything ``config validate`` checks, in one pass: the schema, every model's reference file, the
    features and segments the config names against it, and what the engine would refuse. Raises one
    :class:`ConfigError` with every problem, each with its line."""
    p = Path(path)
    doc = _read_yaml(p)
    config, problems = _validate(doc.data, p.parent)
    problems += _reference_problems(doc.data, p.parent, config)
    if problems:
        raise ConfigError(*_problems_error(problems, str(p), doc))
    assert config is not None
    return config
