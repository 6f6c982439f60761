"""The ``stream-monitor`` command line (the contract is in README.md and docs/formats.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream_monitor.core.errors import ConfigError, KafkaUnavailableError, StreamMonitorError

EXIT_CONFIG = 2


def _fail(exc: StreamMonitorError) -> None:
    """Print the error and exit: 2 for a config error, a Kafka fault's own code (docs/operations.md)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code if isinstance(exc, KafkaUnavailableError) else EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stream-monitor")
def main() -> None:
    """Online drift, data-quality and performance monitoring for ML models on Kafka."""


# ---- reference ---------------------------------------------------------------------------------------------------
@main.group()
def reference() -> None:
    """Reference profiles: what normal looks like."""


@reference.command("build")
@click.option(
    "--features", "features", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--bins", default=20, show_default=True, help="quantile bins per numeric feature")
@click.option("--top-k", default=50, show_default=True, help="categories kept per categorical feature")
@click.option(
    "--max-rows",
    default=100_000,
    show_default=True,
    help="reservoir size per model for quantiles and correlations",
)
@click.option("--seed", default=0, show_default=True)
def reference_build(
    features: Path,
    predictions: Path | None,
    labels: Path | None,
    out: Path,
    bins: int,
    top_k: int,
    max_rows: int,
    seed: int,
) -> None:
    """Build a reference profile from the data the model was trained or validated on."""
    from stream_monitor.adapters.files.jsonl import read_jsonl_events
    from stream_monitor.adapters.files.reference_file import save_reference
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    try:
        builder = ReferenceBuilder(bins=bins, top_k=top_k, max_rows=max_rows, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    bad: dict[str, int] = {}
    builder.add_features(read_jsonl_events(features, bad))
    if predictions:
        builder.add_predictions(read_jsonl_events(predictions, bad))
    if labels:
        builder.add_labels(read_jsonl_events(labels, bad))
    try:
        profile = builder.build()
    except StreamMonitorError as exc:
        _fail(exc)
    save_reference(profile, out)
    for reason, count in sorted({**bad, **builder.skipped}.items()):
        click.echo(f"skipped {count} event(s): {reason}", err=True)
    for model_id, m in profile.models.items():
        kinds: dict[str, int] = {}
        for p in m.features.values():
            kinds[p.type] = kinds.get(p.type, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        click.echo(
            f"{model_id}: {m.events} events, {summary} features"
            f"{', predictions' if m.predictions else ''}{', labels' if m.labels else ''}"
        )
    click.echo(f"wrote {out}")


# ---- config ------------------------------------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Generate and check config files."""


@config.command("init")
@click.option(
    "--reference",
    "reference_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def config_init(reference_file: Path, out: Path) -> None:
    """Write a complete, commented config for every model and feature in a reference profile."""
    from stream_monitor.config.template import write_config

    try:
        write_config(reference_file, out)
    except StreamMonitorError as exc:
        _fail(exc)
    click.echo(f"wrote {out}")


@config.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(path: Path) -> None:
    """Report every problem in a config file, with its line and path; exit 2 if there is any."""
    from stream_monitor.config.loading import check_config_file

    try:
        cfg = check_config_file(path)
    except ConfigError as exc:
        for row in exc.report():
            click.echo(row, err=True)
        click.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"{path}: OK ({len(cfg.models)} model(s))")


# ---- replay ------------------------------------------------------------------------------------------------------
@main.command("replay")
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


@main.command("report")
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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="the HTML file")
@click.option("--title", help="the page's title  [default: stream-monitor report: <models>]")
def report_cmd(
    config_path: Path,
    alerts: Path | None,
    stats: Path | None,
    dead_letters: Path | None,
    out: Path,
    title: str | None,
) -> None:
    """Write one self-contained HTML page per run: what drifted most, timelines, histograms, performance."""
    from stream_monitor.app.report import run_report
    from stream_monitor.config.loading import load_config

    if not (alerts or stats):
        raise click.UsageError("give --alerts, --stats or both")
    try:
        report = run_report(load_config(config_path), out, alerts, stats, dead_letters, title)
    except StreamMonitorError as exc:
        _fail(exc)
    alerted = sum(len(m.alerted) for m in report.models)
    click.echo(
        f"wrote {out} ({out.stat().st_size / 1024:,.0f} KiB; {len(report.models)} model(s), "
        f"{alerted} signal(s) alerted)"
    )


@main.command("demo")
@click.option("--offline", is_flag=True, help="replay the bundled examples through the engine, without Kafka")
@click.option("--rate", default=100.0, show_default=True, help="synthetic feature events per second")
@click.option(
    "--drift-after", default=60.0, show_default=True, help="seconds before the stream starts drifting"
)
@click.option("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the demo keeps its reference, config, alerts and logs  [default: ./stream-monitor-demo]",
)
def demo(
    offline: bool, rate: float, drift_after: float, duration: float | None, workdir: Path | None
) -> None:
    """Run the whole thing locally: a broker, the monitor, a drifting producer; alerts printed as they fire."""
    if offline:
        from stream_monitor.app.demo_offline import run_offline_demo

        run_offline_demo(workdir=workdir)
        return
    from stream_monitor.app.demo_kafka import run_kafka_demo
    from stream_monitor.devtools.kafka import DevKafkaError

    try:
        code = run_kafka_demo(rate=rate, drift_after=drift_after, duration=duration, workdir=workdir)
    except StreamMonitorError as exc:  # the broker at KAFKA_BOOTSTRAP_SERVERS is unreachable or refuses us
        _fail(exc)
    except DevKafkaError as exc:
        click.echo(f"error: the local Kafka broker did not start: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


# ---- alerts ----------------------------------------------------------------------------------------------------
@main.group()
def alerts() -> None:
    """The alerts topic, for an operator."""


@alerts.command("tail")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--model", "models", multiple=True, help="only this model's alerts (repeatable)")
@click.option(
    "--kind", "kinds", multiple=True, help="only alerts of this kind, e.g. concept_drift (repeatable)"
)
@click.option("--from-beginning", is_flag=True, help="every alert the topic holds, not only new ones")
@click.option("--json", "as_json", is_flag=True, help="print each alert event's JSON as it is on the topic")
@click.option("--max-alerts", type=click.IntRange(min=1), help="stop after this many alerts")
@click.option("--idle-seconds", type=click.FloatRange(min=0), help="stop when nothing arrived for this long")
def alerts_tail(
    config_path: Path,
    models: tuple[str, ...],
    kinds: tuple[str, ...],
    from_beginning: bool,
    as_json: bool,
    max_alerts: int | None,
    idle_seconds: float | None,
) -> None:
    """Print the alerts as they arrive on the alerts topic (Ctrl-C stops)."""
    from confluent_kafka import KafkaException

    from stream_monitor.adapters.kafka.alerts_tail import tail_alerts
    from stream_monitor.config.loading import load_config
    from stream_monitor.core.alerts import AlertKind

    unknown = sorted(set(kinds) - {k.value for k in AlertKind})
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}; the kinds are {', '.join(k.value for k in AlertKind)}",
            param_hint="--kind",
        )
    try:
        config = load_config(config_path)
    except StreamMonitorError as exc:
        _fail(exc)
    try:
        tail_alerts(config, click.echo, models, kinds, from_beginning, as_json, max_alerts, idle_seconds)
    except KafkaException as exc:
        click.echo(f"error: cannot read the alerts topic: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


# ---- Kafka service ---------------------------------------------------------------------------------------------
_CONFIG_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.group()
def topics() -> None:
    """Kafka topics of a deployment."""


@topics.command("create")
@click.option("--config", "config_path", type=_CONFIG_FILE, required=True)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="seconds to wait for the broker to answer",
)
def topics_create(config_path: Path, wait_s: float) -> None:
    """Create every topic the config names (inputs, alerts, DLQ, internal) with partitions and settings.

    Idempotent: existing topics are reported and left as they are. Exit 7 if no broker answers within --wait
    seconds; 3, 4, 5 or 8 if the broker refuses us (docs/operations.md).
    """
    import logging

    from confluent_kafka import KafkaError, KafkaException

    from stream_monitor.adapters.kafka.topics import create_all
    from stream_monitor.config.loading import load_config

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config_path)
    except StreamMonitorError as exc:
        _fail(exc)
    try:
        outcomes = create_all(cfg, str(config_path), wait_s)
    except StreamMonitorError as exc:
        _fail(exc)
    except KafkaException as exc:  # the broker answered, then failed us midway: transient, try again
        from stream_monitor.adapters.kafka.clients import Redactor

        err = exc.args[0] if exc.args else None
        text = str(err.str()) if isinstance(err, KafkaError) else type(exc).__name__
        secrets = (v.get_secret_value() for v in cfg.kafka.client.values() if hasattr(v, "get_secret_value"))
        where = cfg.kafka.bootstrap_servers
        click.echo(
            f"error: cannot create topics on {where}: {Redactor(secrets).scrub(text)}; run it again", err=True
        )
        sys.exit(1)
    for o in outcomes:
        click.echo(f"{o.status:<8} {o.name}{': ' + o.message if o.message else ''}")
    if any(o.status == "error" for o in outcomes):
        sys.exit(1)


@main.command("run")
@click.option("--config", "config_path", type=_CONFIG_FILE, required=True)
def run_cmd(config_path: Path) -> None:
    """Run the monitor against Kafka until SIGTERM or Ctrl-C, then snapshot, commit and exit 0."""
    from stream_monitor.app.run import run_service

    try:
        code = run_service(config_path)
    except StreamMonitorError as exc:
        _fail(exc)
    sys.exit(code)


if __name__ == "__main__":
    main()
