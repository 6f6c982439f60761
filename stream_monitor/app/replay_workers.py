"""``replay --workers N``: the fold half in N processes over file shards, the merge half here.

Every input file is cut into N byte ranges at line starts; worker process ``i`` replays shard ``i`` of every
file through a :class:`~stream_monitor.pipeline.local.ShardFolder` (decoding, parsing and folding: the part
that costs) and sends its partials, encoded as on the partials topic, to this process, whose
:class:`~stream_monitor.pipeline.local.Engine` (built for N shards) merges them exactly as the service merges
partitions: a slice completes once every shard has passed it, and its sketch is the same whatever order the
partials arrive in. So the alerts are those of ``--workers 1`` wherever no event is later than the allowed
lateness within its own shard.

Dead letters keep their file and line: a worker numbers the lines of its shard, and this process adds the
lines of the shards before it, then writes them file by file, in line order, once every worker has finished.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_mod
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter, JsonlSource, shard_ranges
from stream_monitor.adapters.files.replay import ReplayOutputs, ReplayReport, replay
from stream_monitor.core.errors import StreamMonitorError
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.partials import decode_partial

POLL_SECONDS = 0.5  # how often a silent queue is checked for a worker that died without a word


class ReplayWorkerError(StreamMonitorError):
    """A replay worker process failed; the message holds its traceback."""


def _worker(
    config_path: str,
    shard: int,
    files: list[tuple[str, str, int, int]],
    ts_path: str,
    max_bytes: int,
    out: Any,
) -> None:
    """Worker process ``shard``: replay its shard of every file through a ShardFolder, partials to ``out``."""
    try:
        from stream_monitor.app.compose import build_service
        from stream_monitor.config.loading import load_config
        from stream_monitor.pipeline.local import ShardFolder

        folds = ShardFolder(
            build_service(load_config(config_path)), shard, lambda parts: out.put(("partials", shard, parts))
        )
        sources = [
            JsonlSource(Path(path), Stream(stream), ts_path, max_bytes, byte_range=(start, end))
            for stream, path, start, end in files
        ]
        dead: list[DeadLetter] = []
        report = replay(
            folds, sources, on_progress=lambda n: out.put(("progress", shard, n)), on_dead=dead.append
        )
        out.put(("done", shard, report, dead, folds.horizons(), folds.accepted))
    except BaseException:  # reported to the parent, which stops the others and says what failed
        out.put(("error", shard, traceback.format_exc()))


def replay_with_workers(
    engine: Engine,
    config_path: Path,
    inputs: Sequence[tuple[Stream, Path]],
    workers: int,
    ts_path: str,
    max_bytes: int,
    outputs: ReplayOutputs,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Run the workers and merge what they send into ``engine`` (built with ``shards=workers``)."""
    report = outputs.report
    engine.record_stats(outputs.stats_out is not None or outputs.on_stats is not None)
    ranges = {stream: shard_ranges(path, workers) for stream, path in inputs}
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    channel = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                str(config_path),
                i,
                [(s.value, str(p), *ranges[s][i]) for s, p in inputs],
                ts_path,
                max_bytes,
                channel,
            ),
            name=f"replay-worker-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    finished: dict[int, tuple[ReplayReport, list[DeadLetter], dict[str, float]]] = {}
    accepted: list[dict[str, Any]] = []
    try:
        while len(finished) < workers:
            try:
                msg = channel.get(timeout=POLL_SECONDS)
            except queue_mod.Empty:
                for i, p in enumerate(procs):
                    if i not in finished and p.exitcode is not None:
                        raise ReplayWorkerError(
                            f"replay worker {i} exited with code {p.exitcode} before finishing"
                        ) from None
                continue
            kind, shard = msg[0], msg[1]
            if kind == "partials":
                outputs.emit(engine.accept(decode_partial(b) for b in msg[2]), engine.take_stats())
            elif kind == "progress" and on_progress is not None:
                on_progress(msg[2])
            elif kind == "done":
                finished[shard] = (msg[2], msg[3], msg[4])
                accepted.append(msg[5])
            elif kind == "error":
                raise ReplayWorkerError(f"replay worker {shard} failed:\n{msg[2]}")
    finally:
        for p in procs:
            if p.is_alive() and len(finished) < workers:
                p.terminate()
            p.join(timeout=10)
    horizons: dict[str, float] = {}
    for _, _, h in finished.values():
        for model, ts in h.items():
            horizons[model] = max(horizons.get(model, ts), ts)
    outputs.emit(engine.finish(horizons), engine.take_stats())
    for counts in accepted:
        for model, by_stream in counts.items():
            if model in engine.pipelines:
                engine.pipelines[model].accepted.update(by_stream)
    _gather(
        report, outputs, [finished[i][0] for i in range(workers)], [finished[i][1] for i in range(workers)]
    )
    return report


def _gather(
    report: ReplayReport, outputs: ReplayOutputs, shards: list[ReplayReport], dead: list[list[DeadLetter]]
) -> None:
    """The shards' counts added up; their dead letters renumbered to the whole file's lines, in file order."""
    for r in shards:
        for target, part in (
            (report.events, r.events),
            (report.lines, r.lines),
            (report.blank, r.blank),
            (report.duplicates, r.duplicates),
        ):
            for key, n in part.items():
                target[key] = target.get(key, 0) + n
    streams = [s.value for s in Stream]
    before: dict[str, int] = {}
    renumbered: list[tuple[int, int, DeadLetter]] = []
    for i, (r, letters) in enumerate(zip(shards, dead, strict=True)):
        for d in letters:
            renumbered.append((streams.index(d.stream), i, replace(d, line=d.line + before.get(d.stream, 0))))
        for stream, n in r.lines.items():
            before[stream] = before.get(stream, 0) + n
    for _, _, d in sorted(renumbered, key=lambda t: (t[0], t[1], t[2].line)):
        outputs.dead(d)
