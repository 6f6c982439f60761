"""The Kafka commands: ``alerts tail`` for an operator, ``topics create`` for a deployment, ``run`` the service."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream_monitor.cli.exits import _fail
from stream_monitor.core.errors import StreamMonitorError

_CONFIG_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
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


@click.group()
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


@click.command("run")
@click.option("--config", "config_path", type=_CONFIG_FILE, required=True)
@click.option(
    "--runtime",
    type=click.Choice(["native", "faust"]),
    default="native",
    show_default=True,
    help="native: the confluent-kafka loop, state exact across restarts; faust: the same stages as Faust "
    "agents, at least once (docs/operations.md)",
)
def run_cmd(config_path: Path, runtime: str) -> None:
    """Run the monitor against Kafka until SIGTERM or Ctrl-C, then snapshot, commit and exit 0."""
    from stream_monitor.app.run import run_service

    try:
        code = run_service(config_path, runtime)
    except StreamMonitorError as exc:
        _fail(exc)
    sys.exit(code)
