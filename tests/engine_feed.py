"""Drive a real :class:`Engine` over JSON-lines example data, batch by batch, recording into ServiceStats.

Shared by the exporter tests and the real-Prometheus test: events of ``features``/``predictions``/
``labels.jsonl`` are merged in event-time order and handed to the engine in runs of one stream, the way the
service hands it consumer batches, and :class:`EngineRecorder` records each batch.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine, ProcessResult
from stream_monitor.pipeline.recorder import EngineRecorder

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_STREAM = REPO / "examples" / "stream"
COMPOSE_CONFIG = REPO / "config" / "stream-monitor.yaml"
STREAM_START = 1763766000.0  # first event of examples/stream; num_00 drifts from +600 s


def merged_batches(directory: Path, batch: int = 500) -> Iterator[tuple[Stream, list[dict[str, Any]]]]:
    """Batches of at most ``batch`` events of one stream, in event-time order across the three files."""
    streams = [Stream.FEATURES, Stream.PREDICTIONS, Stream.LABELS]

    def read(order: int, stream: Stream) -> Iterator[tuple[float, int, int, Stream, dict[str, Any]]]:
        with (directory / f"{stream.value}.jsonl").open("rb") as fh:
            for i, line in enumerate(fh):
                event = orjson.loads(line)
                yield float(event["ts"]), order, i, stream, event

    current: Stream | None = None
    pending: list[dict[str, Any]] = []
    for _, _, _, stream, event in heapq.merge(*(read(i, s) for i, s in enumerate(streams))):
        if pending and (stream is not current or len(pending) >= batch):
            assert current is not None
            yield current, pending
            pending = []
        current = stream
        pending.append(event)
    if pending and current is not None:
        yield current, pending


def feed(
    engine: Engine,
    recorder: EngineRecorder,
    batches: Iterator[tuple[Stream, list[dict[str, Any]]]],
    until_ts: float | None = None,
) -> list[ProcessResult]:
    """Process batches (stopping after the first batch that reaches ``until_ts``), recording each one."""
    results = []
    for stream, events in batches:
        result = engine.process_events(stream, events)
        recorder.record(stream, result, batch_seconds=0.001, stage="engine")
        results.append(result)
        if until_ts is not None and float(events[-1]["ts"]) >= until_ts:
            break
    return results
