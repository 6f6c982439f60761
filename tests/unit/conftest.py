"""Fixtures the unit tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stream_monitor.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference ``reference build`` makes of the bundled examples (model churn-v3), and the config
    ``config init`` writes for it."""
    out = tmp_path_factory.mktemp("cli")
    runner = CliRunner()
    ref = EXAMPLES / "reference"
    result = runner.invoke(
        main,
        [
            "reference",
            "build",
            "--features",
            str(ref / "features.jsonl"),
            "--predictions",
            str(ref / "predictions.jsonl"),
            "--labels",
            str(ref / "labels.jsonl"),
            "--out",
            str(out / "reference.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main,
        ["config", "init", "--reference", str(out / "reference.json"), "--out", str(out / "config.yaml")],
    )
    assert result.exit_code == 0, result.output
    return out
