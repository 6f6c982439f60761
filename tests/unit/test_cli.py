"""The CLI contract of README.md, end to end on the bundled examples (no broker)."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from stream_monitor.cli import main
from stream_monitor.core.alerts import decode_alert

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_reference_is_versioned_json_with_every_feature(workspace: Path) -> None:
    doc = orjson.loads((workspace / "reference.json").read_bytes())
    assert doc["format"] == "stream-monitor.reference/v1"
    model = doc["models"]["churn-v3"]
    assert {"num_00", "cat_00"} <= set(model["features"])
    assert model["features"]["cat_00"]["type"] == "categorical"
    assert model["predictions"]["score"]["type"] == "numeric"
    assert model["multivariate"]["method"] == "normal_scores"  # rank-based correlations


def test_generated_config_is_commented_and_valid(workspace: Path) -> None:
    text = (workspace / "config.yaml").read_text()
    assert text.count("#") > 20 and "num_00" in text
    result = CliRunner().invoke(main, ["config", "validate", str(workspace / "config.yaml")])
    assert result.exit_code == 0, result.output


def test_validate_reports_every_problem_with_exit_2(workspace: Path) -> None:
    bad = workspace / "bad.yaml"
    bad.write_text(
        (workspace / "config.yaml")
        .read_text()
        .replace("max_events:", "max_evnts:")
        .replace('"num_00": {enabled', '"num_99": {enabled')
    )
    result = CliRunner().invoke(main, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "models.churn-v3.window.max_evnts: unknown key" in result.output


def test_validate_names_an_unknown_feature(workspace: Path) -> None:
    bad = workspace / "bad2.yaml"
    bad.write_text(
        (workspace / "config.yaml").read_text().replace('"num_00": {enabled', '"num_99": {enabled')
    )
    result = CliRunner().invoke(main, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "models.churn-v3.features.num_99: not a feature of the reference profile" in result.output


def test_replay_finds_the_injected_drifts_and_keeps_bad_lines(workspace: Path) -> None:
    stream = EXAMPLES / "stream"
    features = workspace / "features.jsonl"
    features.write_bytes((stream / "features.jsonl").read_bytes() + b'not json\n{"event_id": 1}\n')
    alerts_out, dead_out = workspace / "alerts.jsonl", workspace / "dead.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            "--config",
            str(workspace / "config.yaml"),
            "--features",
            str(features),
            "--predictions",
            str(stream / "predictions.jsonl"),
            "--labels",
            str(stream / "labels.jsonl"),
            "--alerts-out",
            str(alerts_out),
            "--dead-letters-out",
            str(dead_out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    alerts = [decode_alert(line) for line in alerts_out.read_bytes().splitlines()]
    fired = {(a.kind.value, a.signal) for a in alerts if a.status.value == "firing"}
    assert ("covariate_drift", "num_00") in fired
    assert ("covariate_drift", "cat_00") in fired
    assert ("prediction_drift", "score") in fired
    assert "covariate_drift" in result.output and "num_00" in result.output  # the summary table
    dead = [orjson.loads(line) for line in dead_out.read_bytes().splitlines()]
    assert {d["reason"] for d in dead} == {"not_json", "missing_field"}
    assert all(d["line"] > 7000 for d in dead)


def test_replay_is_deterministic(workspace: Path) -> None:
    stream = EXAMPLES / "stream"
    outputs = []
    for i in range(2):
        out = workspace / f"det{i}.jsonl"
        result = CliRunner().invoke(
            main,
            [
                "replay",
                "--config",
                str(workspace / "config.yaml"),
                "--features",
                str(stream / "features.jsonl"),
                "--alerts-out",
                str(out),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0
        outputs.append(
            [(a.alert_id, a.status, a.statistic) for a in map(decode_alert, out.read_bytes().splitlines())]
        )
    assert outputs[0] == outputs[1] and outputs[0]


def test_replay_needs_an_input(workspace: Path) -> None:
    result = CliRunner().invoke(
        main, ["replay", "--config", str(workspace / "config.yaml"), "--alerts-out", "-"]
    )
    assert result.exit_code == 2 and "at least one of" in result.output


def test_alerts_tail_refuses_an_unknown_kind_and_names_the_kinds(workspace: Path) -> None:
    result = CliRunner().invoke(
        main, ["alerts", "tail", "--config", str(workspace / "config.yaml"), "--kind", "concept"]
    )
    assert result.exit_code == 2
    assert "concept_drift" in result.output and "covariate_drift" in result.output
