"""``replay --stats-out``: every tested window's statistics as data; a drift's statistic crosses its threshold
in the window its alert names."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from stream_monitor.cli import main
from stream_monitor.core.window_stats import SCHEMA

EXAMPLE_STREAM = Path(__file__).resolve().parents[2] / "examples" / "stream"


def test_the_drifts_statistic_crosses_its_threshold_in_the_window_its_alert_names(
    workspace: Path, tmp_path: Path
) -> None:
    args = ["replay", "--config", str(workspace / "config.yaml")]
    for stream in ("features", "predictions", "labels"):
        args += [f"--{stream}", str(EXAMPLE_STREAM / f"{stream}.jsonl")]
    alerts_out, stats_out = tmp_path / "alerts.jsonl", tmp_path / "stats.jsonl"
    result = CliRunner().invoke(main, [*args, "--alerts-out", str(alerts_out), "--stats-out", str(stats_out)])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines()]
    stats = [orjson.loads(x) for x in stats_out.read_bytes().splitlines()]
    assert stats and all(r["schema"] == SCHEMA for r in stats)
    assert {r["kind"] for r in stats} >= {
        "covariate_drift",
        "prediction_drift",
        "data_quality",
        "concept_drift",
    }

    alert = next(a for a in alerts if a["signal"] == "num_00" and a["status"] == "firing")
    series = [
        r for r in stats if (r["kind"], r["signal"], r["detector"]) == ("covariate_drift", "num_00", "psi")
    ]
    assert [r["window"]["end_ts"] for r in series] == sorted(r["window"]["end_ts"] for r in series)
    crossed = next(r for r in series if r["statistic"] >= r["warning_threshold"])
    assert crossed["window"] == alert["window"] and crossed["decision"] == alert["severity"]
    assert crossed["statistic"] == alert["statistic"]
    before = [r for r in series if r["window"]["end_ts"] < crossed["window"]["end_ts"]]
    assert before and all(r["decision"] == "ok" and r["statistic"] < r["warning_threshold"] for r in before)
    assert all(r["critical_threshold"] >= r["warning_threshold"] for r in series)
