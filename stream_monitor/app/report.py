"""``stream-monitor report`` and the reports of replay and the demos: read the records, build, render, write.

The files are read here; :mod:`stream_monitor.report.build` turns records into the report's values and
:mod:`stream_monitor.report.render` draws the page (matplotlib is imported only when a report is written).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter
from stream_monitor.adapters.files.replay import ReplayReport
from stream_monitor.app.compose import load_profiles
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import SCHEMA as ALERT_SCHEMA
from stream_monitor.core.alerts import encode_alert
from stream_monitor.core.errors import ReportInputError
from stream_monitor.core.window_stats import SCHEMA as STATS_SCHEMA
from stream_monitor.core.window_stats import WindowStat, encode_window_stat
from stream_monitor.pipeline.local import Engine
from stream_monitor.report.build import build_report
from stream_monitor.report.model import DeadLetterTally, Report


def read_records(
    path: Path, what: str, schema: str | None = None, keys: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one a line (blank lines skipped); a line that is not one, or
    not of ``schema`` / without ``keys``, is an error naming the file and line."""
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ReportInputError(f"{path}:{n}: not JSON ({exc}); expected {what}") from None
            if not isinstance(record, dict):
                raise ReportInputError(f"{path}:{n}: not a JSON object; expected {what}")
            if schema is not None and record.get("schema") != schema:
                raise ReportInputError(
                    f"{path}:{n}: schema {record.get('schema')!r}, not {schema!r}; expected {what}"
                )
            missing = [k for k in keys if k not in record]
            if missing:
                raise ReportInputError(f"{path}:{n}: no {', '.join(missing)}; expected {what}")
            yield record


def read_alerts(path: Path) -> Iterator[dict[str, Any]]:
    return read_records(path, "alert events (replay --alerts-out, alerts tail --json)", ALERT_SCHEMA)


def read_stats(path: Path) -> Iterator[dict[str, Any]]:
    return read_records(path, "window statistics (replay --stats-out)", STATS_SCHEMA)


def metrics_counts(metrics_text: str) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Accepted events per model and stream, and dead letters per reason, from the monitor's /metrics.

    >>> metrics_counts('''stream_monitor_events_total{model="m",stream="features",outcome="accepted"} 1200.0
    ... stream_monitor_events_total{model="m",stream="features",outcome="rejected"} 3.0
    ... stream_monitor_dead_letters_total{reason="not_json"} 3.0
    ... ''')
    ({'m': {'features': 1200}}, {'not_json': 3})
    """
    from prometheus_client.parser import text_string_to_metric_families

    accepted: dict[str, dict[str, int]] = {}
    dead: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "stream_monitor_events_total" and labels.get("outcome") == "accepted":
                per = accepted.setdefault(labels.get("model", ""), {})
                stream = labels.get("stream", "")
                per[stream] = per.get(stream, 0) + int(sample.value)
            elif sample.name == "stream_monitor_dead_letters_total" and sample.value:
                reason = labels.get("reason", "")
                dead[reason] = dead.get(reason, 0) + int(sample.value)
    return accepted, dead


def read_metrics(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """:func:`metrics_counts` of a saved /metrics scrape; a file that is not Prometheus text names itself."""
    try:
        return metrics_counts(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportInputError(
            f"{path}: not Prometheus text ({exc}); expected a saved /metrics scrape of the service"
        ) from None


def tally_dead_letters(path: Path) -> DeadLetterTally:
    tally = DeadLetterTally()
    for record in read_records(path, "dead letters (replay --dead-letters-out)", keys=("stream", "reason")):
        tally.add(record)
    return tally


def write_report(
    out: Path,
    config: MonitorConfig,
    alerts: Iterable[Mapping[str, Any]],
    stats: Iterable[Mapping[str, Any]],
    dead_letters: DeadLetterTally | None = None,
    streams: Sequence[tuple[str, int | None, int | None]] = (),
    accepted: Mapping[str, Mapping[str, int]] | None = None,
    sources: Sequence[str] = (),
    stats_recorded: bool | None = None,
    title: str | None = None,
) -> Report:
    """Build the report of a run and write it to ``out`` as one HTML file."""
    from stream_monitor.report.render import render_html  # matplotlib: only when a report is written

    report = build_report(
        alerts,
        stats,
        load_profiles(config),
        dead_letters,
        streams,
        accepted,
        sources,
        stats_recorded,
    )
    models = ", ".join(m.model_id for m in report.models)
    generated = f"written {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC by stream-monitor"
    page = render_html(report, title or f"stream-monitor report: {models}", generated)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return report


def run_report(
    config: MonitorConfig,
    out: Path,
    alerts: Path | None,
    stats: Path | None,
    dead_letters: Path | None,
    title: str | None = None,
    metrics: Path | None = None,
) -> Report:
    """``stream-monitor report``: the report of the files a replay (or ``alerts tail --json``) wrote, and
    of a saved /metrics scrape of the service (``metrics``) for the events accepted and the dead letters."""
    given = (
        ("alerts", alerts),
        ("window statistics", stats),
        ("dead letters", dead_letters),
        ("/metrics", metrics),
    )
    sources = [f"{what}: {path}" for what, path in given if path is not None]
    tally = tally_dead_letters(dead_letters) if dead_letters is not None else None
    accepted: dict[str, dict[str, int]] | None = None
    if metrics is not None:
        accepted, dead = read_metrics(metrics)
        if tally is None:  # the service counts dead letters by reason only
            tally = DeadLetterTally()
            for reason, n in dead.items():
                tally.add_count("(all streams)", reason, n)
    return write_report(
        out,
        config,
        read_alerts(alerts) if alerts is not None else [],
        read_stats(stats) if stats is not None else [],
        tally,
        accepted=accepted,
        sources=sources,
        stats_recorded=stats is not None,
        title=title,
    )


class ReplayRecorder:
    """What a replay's report needs, gathered in process as the replay runs (``replay --report``, the
    offline demo): every window statistic and a tally of the dead letters. Hand :meth:`on_stats` and
    :meth:`on_dead` to :func:`stream_monitor.adapters.files.replay.replay`."""

    def __init__(self) -> None:
        self.stats: list[dict[str, Any]] = []
        self.dead = DeadLetterTally()

    def on_stats(self, records: list[WindowStat]) -> None:
        # the records as a --stats-out file would hold them, so a report from files draws the same page
        self.stats.extend(orjson.loads(encode_window_stat(r)) for r in records)

    def on_dead(self, d: DeadLetter) -> None:
        self.dead.add(d.__dict__)

    def write(
        self, out: Path, config: MonitorConfig, engine: Engine, result: ReplayReport, sources: Sequence[str]
    ) -> Report:
        return write_report(
            out,
            config,
            [orjson.loads(encode_alert(a)) for a in result.alerts],
            self.stats,
            self.dead,
            streams=[(stream, lines, accepted) for stream, lines, accepted, _, _ in result.stream_rows()],
            accepted={mid: dict(p.accepted) for mid, p in engine.pipelines.items()},
            sources=sources,
            stats_recorded=True,
        )
