"""``stream-monitor replay``: files in, through the composed engine, alerts and dead letters out, a summary on
stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from stream_monitor.adapters.files.jsonl_blocks import JsonlSource
from stream_monitor.adapters.files.replay import (
    ReplayOutputs,
    ReplayReport,
    open_text_sink,
    replay,
)
from stream_monitor.app.compose import build_engine
from stream_monitor.app.replay_workers import replay_with_workers
from stream_monitor.config.loading import load_config
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine


def run_replay(
    config_path: Path,
    features: Path | None,
    predictions: Path | None,
    labels: Path | None,
    alerts_out: str,
    dead_letters_out: str | None,
    progress: bool | None,
    retraining_out: str | None = None,
    stats_out: str | None = None,
    report_out: Path | None = None,
    workers: int = 1,
) -> ReplayReport:
    """``stream-monitor replay``: wire files, engine and outputs; print a summary to stderr (with
    ``report_out``, also write the HTML report of the run)."""
    from tqdm import tqdm  # imported here: the CLI's other commands start without it

    from stream_monitor.app.report import ReplayRecorder

    config = load_config(config_path)
    engine = build_engine(config, shards=workers)
    ts_paths = {m.fields.ts for m in config.models.values()}
    ts_path = ts_paths.pop() if len(ts_paths) == 1 else "ts"
    max_bytes = config.service.max_message_bytes
    sources = [
        JsonlSource(path, stream, ts_path, max_bytes)
        for path, stream in (
            (features, Stream.FEATURES),
            (predictions, Stream.PREDICTIONS),
            (labels, Stream.LABELS),
        )
        if path is not None
    ]
    total = sum(s.path.stat().st_size for s in sources)
    show = sys.stderr.isatty() if progress is None else progress
    alerts_sink = open_text_sink(alerts_out)
    dead_sink = open_text_sink(dead_letters_out)
    retrain_sink = open_text_sink(retraining_out)
    stats_sink = open_text_sink(stats_out)
    recorder = ReplayRecorder() if report_out is not None else None
    try:
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="replay", disable=not show, file=sys.stderr
        ) as bar:
            outputs = ReplayOutputs(
                ReplayReport(),
                alerts_sink,
                dead_sink,
                retraining_out=retrain_sink,
                stats_out=stats_sink,
                on_stats=None if recorder is None else recorder.on_stats,
                on_dead=None if recorder is None else recorder.on_dead,
            )
            if workers > 1:
                shards = [(s.stream, s.path) for s in sources]
                report = replay_with_workers(
                    engine, config_path, shards, workers, ts_path, max_bytes, outputs, bar.update
                )
            else:
                report = replay(engine, sources, on_progress=bar.update, outputs=outputs)
    finally:
        for sink in (alerts_sink, dead_sink, retrain_sink, stats_sink):
            if sink is not None:
                sink.flush()
                if sink.fileno() != 1:
                    sink.close()
    _print_summary(report, engine, sys.stderr, dead_letters_out)
    if recorder is not None and report_out is not None:
        inputs = ", ".join(str(s.path) for s in sources)
        recorder.write(report_out, config, engine, report, [f"replay of {inputs} with {config_path}"])
        sys.stderr.write(f"report written to {report_out}\n")
    return report


def _print_summary(
    report: ReplayReport, engine: Engine, out: IO[str], dead_letters_out: str | None = None
) -> None:
    windows = sum(p.monitor.windows_tested for p in engine.pipelines.values())
    out.write(f"replayed in event-time order; {windows} window(s) tested\n")
    for stream, lines, accepted, dead, blank in report.stream_rows():
        out.write(
            f"  {stream:<12} {lines:>10,} lines: {accepted:,} accepted, {dead:,} dead-lettered, {blank:,} blank\n"
        )
    if report.duplicates:
        dup = ", ".join(f"{v:,} {k}" for k, v in sorted(report.duplicates.items()))
        out.write(f"duplicate event ids suppressed (not folded, not dead-lettered): {dup}\n")
    if report.dead_letters:
        dl = ", ".join(f"{v:,} {k}" for k, v in sorted(report.dead_letters.items()))
        where = (
            f"written to {dead_letters_out}"
            if dead_letters_out
            else "rerun with --dead-letters-out FILE to see each with its file and line"
        )
        out.write(f"dead letters: {dl} ({where})\n")
    rows = report.summary_rows()
    if not rows:
        out.write("no alerts: no drift found\n")
        return
    out.write(f"{len(report.alerts)} alert event(s):\n")
    out.write(f"  {'kind':<22} {'signal':<28} {'worst':<9} {'firing':>6} {'resolved':>8}\n")
    for kind, signal, worst, firing, resolved in rows:
        out.write(f"  {kind:<22} {signal:<28} {worst:<9} {firing:>6} {resolved:>8}\n")
