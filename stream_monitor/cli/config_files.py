"""``stream-monitor config init`` and ``config validate``: write a commented config, report every problem."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream_monitor.cli.exits import EXIT_CONFIG, _fail
from stream_monitor.core.errors import ConfigError, StreamMonitorError


@click.group()
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
