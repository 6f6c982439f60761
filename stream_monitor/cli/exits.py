"""How a command fails: the error printed, and the exit code its cause has (docs/operations.md)."""

from __future__ import annotations

import sys

import click

from stream_monitor.core.errors import KafkaUnavailableError, StreamMonitorError

EXIT_CONFIG = 2


def _fail(exc: StreamMonitorError) -> None:
    """Print the error and exit: 2 for a config error, a Kafka fault's own code (docs/operations.md)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code if isinstance(exc, KafkaUnavailableError) else EXIT_CONFIG)
