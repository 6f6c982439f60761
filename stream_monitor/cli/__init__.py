"""The ``stream-monitor`` command line (the contract is in README.md and docs/formats.md).

One module per command or group of commands; they import what they run only when they run, so the CLI starts
fast (and without matplotlib).
"""

from __future__ import annotations

import click

from stream_monitor.cli.config_files import config
from stream_monitor.cli.demo_cmd import demo
from stream_monitor.cli.kafka import alerts, run_cmd, topics
from stream_monitor.cli.reference_build import reference
from stream_monitor.cli.replay_report import replay_cmd, report_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stream-monitor")
def main() -> None:
    """Online drift, data-quality and performance monitoring for ML models on Kafka."""


for command in (reference, config, replay_cmd, report_cmd, demo, alerts, topics, run_cmd):
    main.add_command(command)
