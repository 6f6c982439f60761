"""``stream-monitor replay`` (the engine over files) and ``report`` (the HTML page from its output)."""

from __future__ import annotations

from pathlib import Path

import click

from stream_monitor.cli.exits import _fail
from stream_monitor.core.errors import StreamMonitorError


@click.command("replay")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--features", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--alerts-out", required=True, help="JSON-lines file for every alert event ('-' for stdout)")
@click.option("--dead-letters-out", help="JSON-lines file for every rejected input line, with its reason")
@click.option("--retraining-out", help="JSON-lines file for retraining requests (critical concept drift)")
@click.option(
    "--stats-out",
    help="JSON-lines file of every tested window's statistics, thresholds and decision, per signal",
)
@click.option(
    "--report",
    "report_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the run's HTML report here (one self-contained file; see stream-monitor report)",
)
@click.option(
    "--progress/--no-progress", default=None, help="progress bar (default: when stderr is a terminal)"
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="processes that decode and fold shards of the files (the merge and tests stay in this one)",
)
def replay_cmd(
    config_path: Path,
    features: Path | None,
    predictions: Path | None,
    labels: Path | None,
    alerts_out: str,
    dead_letters_out: str | None,
    retraining_out: str | None,
    stats_out: str | None,
    report_out: Path | None,
    progress: bool | None,
    workers: int,
) -> None:
    """Run the detection engine over files in event-time order and write every alert as JSON lines."""
    from stream_monitor.app.replay import run_replay

    if not (features or predictions or labels):
        raise click.UsageError("give at least one of --features, --predictions, --labels")
    try:
        run_replay(
            config_path,
            features,
            predictions,
            labels,
            alerts_out,
            dead_letters_out,
            progress,
            retraining_out,
            stats_out,
            report_out,
            workers,
        )
    except StreamMonitorError as exc:
        _fail(exc)


@click.command("report")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--alerts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="alert events, one JSON object a line (replay --alerts-out, alerts tail --json)",
)
@click.option(
    "--stats",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="window statistics (replay --stats-out): every window of every signal, for the timelines",
)
@click.option(
    "--dead-letters",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="dead letters (replay --dead-letters-out), counted by reason",
)
@click.option(
    "--metrics",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a saved /metrics scrape of the service: events accepted per model and stream, dead letters by reason",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the HTML file")
@click.option("--title", help="the page's title  [default: stream-monitor report: <models>]")
def report_cmd(
    config_path: Path,
    alerts: Path | None,
    stats: Path | None,
    dead_letters: Path | None,
    metrics: Path | None,
    out: Path,
    title: str | None,
) -> None:
    """Write one self-contained HTML page per run: what drifted most, timelines, histograms, performance."""
    from stream_monitor.app.report import run_report
    from stream_monitor.config.loading import load_config

    if not (alerts or stats):
        raise click.UsageError("give --alerts, --stats or both")
    try:
        report = run_report(load_config(config_path), out, alerts, stats, dead_letters, title, metrics)
    except StreamMonitorError as exc:
        _fail(exc)
    alerted = sum(len(m.alerted) for m in report.models)
    click.echo(
        f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB; {len(report.models)} model(s), "
        f"{alerted} signal(s) alerted)"
    )
