"""``stream-monitor demo --offline``: the whole pipeline on the bundled examples, without Kafka.

Builds a reference profile from ``examples/reference``, writes a config with ``config init``'s defaults,
replays ``examples/stream`` (clean for 10 minutes, then a mean shift, a new category and a score shift) through
the engine and prints each alert as it fires.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from stream_monitor.core.alerts import Alert, Status


def examples_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "examples"
    if not (here / "reference" / "features.jsonl").exists():
        raise click.ClickException(
            f"the bundled examples are not at {here}: run the demo from a source checkout"
        )
    return here


def format_alert(a: Alert) -> str:
    when = datetime.fromtimestamp(a.event_ts, tz=UTC).strftime("%H:%M:%S")
    badge = "RESOLVED" if a.status is Status.RESOLVED else a.severity.value.upper()
    return f"[{when}] {badge:<8} {a.model_id} {a.kind.value:<18} {a.signal:<22} {a.message}"


def run_offline_demo(echo: Callable[[str], None] = click.echo) -> list[Alert]:
    from stream_monitor.adapters.replay import JsonlSource, replay
    from stream_monitor.bootstrap import build_engine
    from stream_monitor.config_template import write_config
    from stream_monitor.core.events import Stream
    from stream_monitor.settings import load_config
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    ex = examples_dir()
    from stream_monitor.adapters.files import read_jsonl_events

    with tempfile.TemporaryDirectory(prefix="stream-monitor-demo-") as tmp:
        work = Path(tmp)
        builder = ReferenceBuilder()
        bad: dict[str, int] = {}
        builder.add_features(read_jsonl_events(ex / "reference" / "features.jsonl", bad))
        builder.add_predictions(read_jsonl_events(ex / "reference" / "predictions.jsonl", bad))
        builder.add_labels(read_jsonl_events(ex / "reference" / "labels.jsonl", bad))
        builder.build().save(work / "reference.json")
        write_config(work / "reference.json", work / "config.yaml")
        echo(f"reference profile and config written to {work} (config init defaults)")
        engine = build_engine(load_config(work / "config.yaml"))
        sources = [
            JsonlSource(ex / "stream" / f"{s.value}.jsonl", s)
            for s in (Stream.FEATURES, Stream.PREDICTIONS, Stream.LABELS)
        ]
        echo(
            "replaying examples/stream: clean for 10 minutes, then a mean shift, a new category, a score shift"
        )

        def show(alerts: list[Alert]) -> None:
            for a in alerts:
                echo(format_alert(a))

        report = replay(engine, sources, on_alerts=show)
        events = sum(report.events.values())
        echo(f"{events} events replayed, {len(report.alerts)} alert event(s)")
        return report.alerts
