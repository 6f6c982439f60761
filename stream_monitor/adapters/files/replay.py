"""The replay edge: JSON-lines files in, merged in event-time order, through the same engine as the service.

Files are read in blocks (:mod:`~stream_monitor.adapters.files.jsonl_blocks`) and merged: each round emits,
from every file, the events up to the earliest "last timestamp" among the files' current blocks, and at most
half the allowed lateness past the earliest pending event, so the merged order is event time whenever each
file is itself in event-time order (a file that is not is still handled: out-of-order events become late
events), and no event is late because of how the files were cut into blocks.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter, JsonlSource, _Block
from stream_monitor.core.alerts import Alert, encode_alert, retraining_requests
from stream_monitor.core.events import (
    FOLD_REASONS,
    Stream,
)
from stream_monitor.core.window_stats import WindowStat, encode_window_stat
from stream_monitor.pipeline.local import Engine, ShardFolder


@dataclass
class ReplayReport:
    alerts: list[Alert] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # accepted, per stream
    dead_letters: dict[str, int] = field(default_factory=dict)  # per "stream:reason"
    lines: dict[str, int] = field(default_factory=dict)  # read, per stream
    blank: dict[str, int] = field(default_factory=dict)  # blank lines, per stream
    duplicates: dict[str, int] = field(default_factory=dict)  # repeated event ids suppressed, per stream

    def stream_rows(self) -> list[tuple[str, int, int, int, int]]:
        """(stream, lines read, accepted, dead-lettered, blank): the last three and the stream's suppressed
        :attr:`duplicates` add up to the first."""
        dead: dict[str, int] = {}
        for key, n in self.dead_letters.items():
            stream = key.split(":", 1)[0]
            dead[stream] = dead.get(stream, 0) + n
        return [
            (stream, n, self.events.get(stream, 0), dead.get(stream, 0), self.blank.get(stream, 0))
            for stream, n in self.lines.items()
        ]

    def summary_rows(self) -> list[tuple[str, str, str, int, int]]:
        """(kind, signal, worst severity, firing events, resolved events) per kind and signal."""
        table: dict[tuple[str, str], list[Any]] = {}
        for a in self.alerts:
            row = table.setdefault((a.kind.value, a.signal), ["warning", 0, 0])
            if a.status.value == "firing":
                row[1] += 1
                if a.severity.value == "critical":
                    row[0] = "critical"
            else:
                row[2] += 1
        return [(k, s, r[0], r[1], r[2]) for (k, s), r in sorted(table.items())]


def merge_step_seconds(engine: Engine | ShardFolder) -> float:
    """How far one file may run ahead of the others while merging: half the smallest allowed lateness (or a
    quarter slice when a model allows none), so that no event is late only because of how files were read."""
    lateness = [m.window.allowed_lateness_seconds for m in engine.config.models.values()]
    slices = engine.slice_lengths()
    smallest = min(lateness, default=0.0)
    return smallest / 2 if smallest > 0 else min(slices, default=1.0) / 4


@dataclass
class ReplayOutputs:
    """Where a replay's alerts, retraining requests, window statistics and dead letters go, as they come."""

    report: ReplayReport
    alerts_out: IO[bytes] | None = None
    dead_out: IO[bytes] | None = None
    on_alerts: Callable[[list[Alert]], None] | None = None
    retraining_out: IO[bytes] | None = None
    stats_out: IO[bytes] | None = None
    on_stats: Callable[[list[WindowStat]], None] | None = None
    on_dead: Callable[[DeadLetter], None] | None = None

    def dead(self, d: DeadLetter) -> None:
        key = f"{d.stream}:{d.reason}"
        self.report.dead_letters[key] = self.report.dead_letters.get(key, 0) + 1
        if self.dead_out is not None:
            self.dead_out.write(d.to_json() + b"\n")
        if self.on_dead is not None:
            self.on_dead(d)

    def emit(self, alerts: list[Alert], records: list[WindowStat]) -> None:
        self.report.alerts.extend(alerts)
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        if self.alerts_out is not None:
            for a in alerts:
                self.alerts_out.write(encode_alert(a) + b"\n")
        if self.retraining_out is not None:
            for r in retraining_requests(alerts):
                self.retraining_out.write(orjson.dumps(r) + b"\n")
        if self.stats_out is not None:
            for record in records:
                self.stats_out.write(encode_window_stat(record) + b"\n")
        if self.on_stats is not None and records:
            self.on_stats(records)


def replay(
    engine: Engine | ShardFolder,
    sources: Sequence[JsonlSource],
    alerts_out: IO[bytes] | None = None,
    dead_out: IO[bytes] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_alerts: Callable[[list[Alert]], None] | None = None,
    retraining_out: IO[bytes] | None = None,
    stats_out: IO[bytes] | None = None,
    on_stats: Callable[[list[WindowStat]], None] | None = None,
    on_dead: Callable[[DeadLetter], None] | None = None,
    outputs: ReplayOutputs | None = None,
) -> ReplayReport:
    """Merge the sources in event time, feed the engine block by block, write alerts as they fire (and, with
    ``stats_out``, every window's statistics as they are tested). ``on_alerts``, ``on_stats`` and ``on_dead``
    see the alerts, window statistics and dead letters as they come (for a report); ``outputs`` gives all of
    these at once instead."""
    out = outputs or ReplayOutputs(
        ReplayReport(), alerts_out, dead_out, on_alerts, retraining_out, stats_out, on_stats, on_dead
    )
    report = out.report
    engine.expect(s.stream for s in sources)
    engine.record_stats(out.stats_out is not None or out.on_stats is not None)
    dead = out.dead

    def emit(alerts: list[Alert]) -> None:
        out.emit(alerts, engine.take_stats())

    step = merge_step_seconds(engine)
    by_stream = {s.stream: s for s in sources}
    iters = {
        s.stream: s.blocks(dead, engine.decoder(s.stream) if s.stream is not Stream.LABELS else None)
        for s in sources
    }
    pending: dict[Stream, _Block] = {}
    done_bytes = 0
    while True:
        for stream, it in list(iters.items()):
            if stream not in pending:
                block = next(it, None)
                if block is None:
                    del iters[stream]
                else:
                    pending[stream] = block
        if not pending:
            break
        # Up to the earliest end of a pending block, and no more than a step past the earliest pending event:
        # a file may never run ahead of another by more than the lateness the windows allow.
        horizon = min(
            min(float(b.keys[-1]) for b in pending.values()),
            min(float(b.keys[0]) for b in pending.values()) + step,
        )
        for stream in sorted(pending, key=lambda s: list(Stream).index(s)):
            block = pending[stream]
            cut = int(np.searchsorted(block.keys, horizon, side="right"))
            if cut == 0:
                continue
            head, rest = block.split(cut)
            if head.decoded is not None:  # the decoder's rejections became dead letters when it decoded
                result = engine.process_decoded(stream, head.decoded)
                assert head.raw is not None
                source = by_stream[stream]
                for r in result.rejections:  # the fold's own: the event-time screen's
                    if r.reason in FOLD_REASONS:
                        dead(source._dead(head.lines[r.index], r, head.raw[r.index]))
            else:
                assert head.events is not None
                result = engine.process_events(stream, head.events)
                source = by_stream[stream]
                refused = [
                    source._dead(head.lines[r.index], r, orjson.dumps(head.events[r.index]))
                    for r in result.rejections
                ]
                for d in sorted([*head.dead, *refused], key=lambda d: d.line):  # in the file's order
                    dead(d)
            accepted = cut - len(result.rejections) - result.duplicates
            report.events[stream.value] = report.events.get(stream.value, 0) + accepted
            if result.duplicates:
                report.duplicates[stream.value] = report.duplicates.get(stream.value, 0) + result.duplicates
            emit(result.alerts)
            if cut == len(block.keys):
                del pending[stream]
            else:
                pending[stream] = rest
        if on_progress is not None:
            total = sum(s.bytes_read for s in sources)
            on_progress(total - done_bytes)
            done_bytes = total
    emit(engine.flush())
    for source in sources:
        report.lines[source.stream.value] = source.lines_read
        report.blank[source.stream.value] = source.blank_lines
    return report


def open_text_sink(path: str | None) -> IO[bytes] | None:
    if path is None:
        return None
    if path == "-":
        return io.BufferedWriter(io.FileIO(1, "w", closefd=False))
    return Path(path).open("wb")
