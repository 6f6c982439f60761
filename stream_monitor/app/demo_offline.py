"""``stream-monitor demo --offline``: the whole pipeline on the bundled examples, without Kafka.

Builds a reference profile from ``examples/reference``, writes a config with ``config init``'s defaults,
replays ``examples/stream`` (clean for 10 minutes, then a mean shift, a new category and a score shift) through
the engine and prints each alert as it fires. Its files (reference, config, alerts, the HTML report) stay in
the demo's folder, ``./stream-monitor-demo`` unless ``--workdir`` says otherwise.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import click

from stream_monitor.adapters.files.reference_file import save_reference
from stream_monitor.core.alerts import Alert, format_alert


def examples_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "examples"
    if not (here / "reference" / "features.jsonl").exists():
        raise click.ClickException(
            f"the bundled examples are not at {here}: run the demo from a source checkout"
        )
    return here


DEFAULT_WORKDIR: Final = "stream-monitor-demo"  # in the current directory; kept after the demo, for a look
TIME_LEGEND: Final = "times in [brackets] are the events' own time (UTC), not the wall clock"


# what a demo writes in its folder, and what each file holds
DEMO_FILES: Final = {
    "reference.json": "the reference profile built from examples/reference",
    "config.yaml": "the config (config init's defaults)",
    "alerts.jsonl": "every alert event, one JSON object a line",
    "window_stats.jsonl": "every tested window's statistics, from the window_stats topic (Kafka demo)",
    "report.html": "the HTML report: what drifted most, timelines, histograms (open it in a browser)",
    "monitor.log": "the monitor's log (Kafka demo)",
    "producer.log": "the synthetic producer's log (Kafka demo)",
}


def prepare_workdir(workdir: Path | None) -> Path:
    """The demo's folder (``./stream-monitor-demo`` unless given), emptied of a previous demo's files; also
    removes temporary folders that demos of earlier versions left behind when they were killed."""
    work = (workdir or Path.cwd() / DEFAULT_WORKDIR).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        (work / name).unlink(missing_ok=True)
    stale = time.time() - 3600
    for old in Path(tempfile.gettempdir()).glob("stream-monitor-demo-*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)
    return work


def describe_workdir(work: Path) -> list[str]:
    """Lines telling where the demo's files are."""
    lines = [f"the demo's files are in {work}:"]
    for name, what in DEMO_FILES.items():
        if (work / name).exists():
            lines.append(f"  {name:<15} {what}")
    return lines


def run_offline_demo(echo: Callable[[str], None] = click.echo, workdir: Path | None = None) -> list[Alert]:
    from stream_monitor.adapters.files.jsonl import read_jsonl_events
    from stream_monitor.adapters.files.jsonl_blocks import JsonlSource
    from stream_monitor.adapters.files.replay import replay
    from stream_monitor.app.compose import build_engine
    from stream_monitor.app.report import ReplayRecorder
    from stream_monitor.config.loading import load_config
    from stream_monitor.config.template import write_config
    from stream_monitor.core.events import Stream
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    ex = examples_dir()
    work = prepare_workdir(workdir)
    builder = ReferenceBuilder()
    bad: dict[str, int] = {}
    builder.add_features(read_jsonl_events(ex / "reference" / "features.jsonl", bad))
    builder.add_predictions(read_jsonl_events(ex / "reference" / "predictions.jsonl", bad))
    builder.add_labels(read_jsonl_events(ex / "reference" / "labels.jsonl", bad))
    save_reference(builder.build(), work / "reference.json")
    write_config(work / "reference.json", work / "config.yaml")
    echo(f"reference profile and config written to {work} (config init defaults)")
    config = load_config(work / "config.yaml")
    engine = build_engine(config)
    sources = [
        JsonlSource(ex / "stream" / f"{s.value}.jsonl", s)
        for s in (Stream.FEATURES, Stream.PREDICTIONS, Stream.LABELS)
    ]
    echo("replaying examples/stream: clean for 10 minutes, then a mean shift, a new category, a score shift")
    echo(TIME_LEGEND)

    def show(alerts: list[Alert]) -> None:
        for a in alerts:
            echo(format_alert(a))

    recorder = ReplayRecorder()
    with (work / "alerts.jsonl").open("wb") as alerts_out:
        report = replay(
            engine, sources, alerts_out, on_alerts=show, on_stats=recorder.on_stats, on_dead=recorder.on_dead
        )
    events = sum(report.events.values())
    echo(f"{events} events replayed, {len(report.alerts)} alert event(s)")
    recorder.write(
        work / "report.html", config, engine, report, ["stream-monitor demo --offline: examples/stream"]
    )
    for line in describe_workdir(work):
        echo(line)
    return report.alerts
