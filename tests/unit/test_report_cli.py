"""``stream-monitor report`` and ``replay --report``: one self-contained page from a replay's files or from the
replay itself, the same page either way; bad inputs are named with file and line; the CLI starts without
matplotlib; the Kafka demo's report is drawn from alerts and /metrics alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from stream_monitor.app.demo_kafka import _write_report
from stream_monitor.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPO = EXAMPLES.parent


@pytest.fixture(scope="module")
def replayed(workspace: Path) -> Path:
    """A replay of the examples' drifting stream (with two bad lines) with every output and its report."""
    stream = EXAMPLES / "stream"
    features = workspace / "features.jsonl"
    features.write_bytes((stream / "features.jsonl").read_bytes() + b'not json\n{"event_id": 1}\n')
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
            str(workspace / "alerts.jsonl"),
            "--dead-letters-out",
            str(workspace / "dead.jsonl"),
            "--stats-out",
            str(workspace / "stats.jsonl"),
            "--report",
            str(workspace / "replay-report.html"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"report written to {workspace / 'replay-report.html'}" in result.output
    return workspace


def _ranking(page: str) -> list[str]:
    table = page[page.index('id="drift-ranking-churn-v3"') :]
    return re.findall(r'<tr data-signal="([^"]+)"', table[: table.index("</table>")])


def test_replay_writes_a_self_contained_report(replayed: Path) -> None:
    page = (replayed / "replay-report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch: no scripts, stylesheets, images or fonts from anywhere
    assert not re.search(r"<script|<link|<img|<iframe|url\((?!#)|@import", page)
    assert not re.search(r'(?:src|href)="(?!#)', page)
    ranking = _ranking(page)
    assert set(ranking[:2]) == {"cat_00", "num_00"} and ranking[2] == "score"  # the three that alerted
    for signal in ("num_00", "cat_00", "score"):
        assert f'id="histogram-{signal}"' in page and f'id="timeline-{signal}"' in page
    assert 'id="timeline-num_01"' in page  # quiet signals get their timelines too
    assert "<h3>Performance</h3>" in page and "not_json" in page and "missing_field" in page
    assert page.count("<svg") >= 15 and len(page) < 600_000


def test_the_report_command_draws_the_same_page_from_the_files(replayed: Path) -> None:
    out = replayed / "report.html"
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--config",
            str(replayed / "config.yaml"),
            "--alerts",
            str(replayed / "alerts.jsonl"),
            "--stats",
            str(replayed / "stats.jsonl"),
            "--dead-letters",
            str(replayed / "dead.jsonl"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "3 signal(s) alerted" in result.output
    from_files, in_process = out.read_text(), (replayed / "replay-report.html").read_text()
    assert _ranking(from_files) == _ranking(in_process)

    def charts(page: str) -> list[str]:
        return re.findall(r'<figure id="([^"]+)"', page)

    assert charts(from_files) == charts(in_process)


def test_alerts_alone_make_a_report_that_says_what_it_lacks(replayed: Path) -> None:
    out = replayed / "alerts-only.html"
    args = ["report", "--config", str(replayed / "config.yaml"), "--alerts", str(replayed / "alerts.jsonl")]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "timelines show the alert events only" in page
    assert 'id="histogram-num_00"' in page  # the alert's window_counts carry the histogram


def test_a_saved_metrics_scrape_gives_the_service_reports_counts(replayed: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.txt"
    metrics.write_text(
        "# TYPE stream_monitor_events_total counter\n"
        'stream_monitor_events_total{model="churn-v3",stream="features",outcome="accepted"} 7123.0\n'
        'stream_monitor_events_total{model="churn-v3",stream="predictions",outcome="accepted"} 7001.0\n'
        "# TYPE stream_monitor_dead_letters_total counter\n"
        'stream_monitor_dead_letters_total{reason="bad_timestamp"} 5.0\n'
    )
    out = tmp_path / "service.html"
    args = ["report", "--config", str(replayed / "config.yaml"), "--alerts", str(replayed / "alerts.jsonl")]
    result = CliRunner().invoke(main, [*args, "--metrics", str(metrics), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "7,123" in page and "7,001" in page and "bad_timestamp" in page
    # not Prometheus text: the file is named
    metrics.write_text("this is {not metrics\n")
    result = CliRunner().invoke(main, [*args, "--metrics", str(metrics), "--out", str(out)])
    assert result.exit_code == 2 and f"{metrics}: not Prometheus text" in result.output


def test_report_inputs_are_checked(replayed: Path) -> None:
    config = str(replayed / "config.yaml")
    out = str(replayed / "never.html")
    result = CliRunner().invoke(main, ["report", "--config", config, "--out", out])
    assert result.exit_code == 2 and "--alerts, --stats or both" in result.output
    # a stats file given as alerts: named with its file and line
    result = CliRunner().invoke(
        main, ["report", "--config", config, "--alerts", str(replayed / "stats.jsonl"), "--out", out]
    )
    assert result.exit_code == 2
    assert f"{replayed / 'stats.jsonl'}:1: schema 'stream-monitor.window-stats/v1'" in result.output
    assert not Path(out).exists()


def test_the_kafka_demos_report_comes_from_its_alerts_and_metrics(replayed: Path, tmp_path: Path) -> None:
    (tmp_path / "alerts.jsonl").write_bytes((replayed / "alerts.jsonl").read_bytes())
    (tmp_path / "config.yaml").write_text(
        (replayed / "config.yaml").read_text().replace("reference.json", str(replayed / "reference.json"))
    )
    metrics = (
        'stream_monitor_events_total{model="churn-v3",stream="features",outcome="accepted"} 7200.0\n'
        'stream_monitor_dead_letters_total{reason="not_json"} 4.0\n'
    )
    _write_report(tmp_path, tmp_path / "config.yaml", metrics)
    page = (tmp_path / "report.html").read_text()
    assert _ranking(page)[:2] in (["cat_00", "num_00"], ["num_00", "cat_00"])
    assert "7,200" in page and "not_json" in page and "(all streams)" in page
    assert "timelines show the alert events only" in page

    # with the records the monitor published to its window_stats topic, the timelines draw every window
    (tmp_path / "window_stats.jsonl").write_bytes((replayed / "stats.jsonl").read_bytes())
    _write_report(tmp_path, tmp_path / "config.yaml", metrics)
    page = (tmp_path / "report.html").read_text()
    assert "timelines show the alert events only" not in page
    assert "window statistics not recorded" not in page and "drift window(s) tested" in page


def test_the_cli_starts_without_matplotlib() -> None:
    code = "import sys; import stream_monitor.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_alert_records_from_the_replay_decode_as_alerts(replayed: Path) -> None:
    """The window_counts added to distance alerts are plain lists of counts, one per reference bin."""
    alerts = [orjson.loads(x) for x in (replayed / "alerts.jsonl").read_bytes().splitlines()]
    num = next(a for a in alerts if a["signal"] == "num_00")
    assert sum(num["details"]["window_counts"]) == num["details"]["window_values"]
    reference = orjson.loads((replayed / "reference.json").read_bytes())
    assert len(num["details"]["window_counts"]) == len(
        reference["models"]["churn-v3"]["features"]["num_00"]["counts"]
    )
