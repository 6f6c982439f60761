"""``stream-monitor demo``: a broker, the monitor and a drifting producer, locally (or offline, without Kafka)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream_monitor.cli.exits import _fail
from stream_monitor.core.errors import StreamMonitorError


@click.command("demo")
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
