"""The replay edge: JSON-lines files in, merged in event-time order, through the same engine as the service.

Files are read in blocks and merged: each round emits, from every file, the events up to the earliest "last
timestamp" among the files' current blocks, and at most half the allowed lateness past the earliest pending
event, so the merged order is event time whenever each file is itself in event-time order (a file that is not
is still handled: out-of-order events become late events), and no event is late because of how the files were
cut into blocks.
"""

from __future__ import annotations

import io
import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import orjson

from stream_monitor.core.alerts import Alert, encode_alert, retraining_requests
from stream_monitor.core.events import (
    FOLD_REASONS,
    FieldPath,
    Rejection,
    Stream,
    decode_batch,
    parse_timestamps,
)
from stream_monitor.core.window_stats import WindowStat, encode_window_stat
from stream_monitor.pipeline.local import Engine, ShardFolder
from stream_monitor.pipeline.partition_fold import Decoded

BLOCK_BYTES: Final = 1 << 20  # read a file a mebibyte at a time (a few thousand events), split in memory


@dataclass
class DeadLetter:
    stream: str
    file: str
    line: int
    reason: str
    detail: str
    raw: str

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)


@dataclass
class _Block:
    """Messages of one file: decoded into dicts (``events``) or, for feature files, into typed rows
    (``decoded``: what the service's decoder makes of them), with their line numbers and sort keys."""

    lines: list[int]
    keys: np.ndarray[Any, Any]  # event-time sort key per message
    events: list[dict[str, Any]] | None = None
    decoded: Decoded | None = None
    dead: list[DeadLetter] = field(default_factory=list)  # undecodable lines among these, not yet written
    raw: list[bytes] | None = None  # the lines of a ``decoded`` block, for the dead letters of the fold

    def split(self, cut: int) -> tuple[_Block, _Block]:
        """The first ``cut`` messages and the rest."""
        head, tail = (None, None) if self.decoded is None else self.decoded.split(cut)
        events = self.events
        later = self.lines[cut] if cut < len(self.lines) else None
        dead = [d for d in self.dead if later is None or d.line < later]
        raw = self.raw
        return (
            _Block(
                self.lines[:cut],
                self.keys[:cut],
                None if events is None else events[:cut],
                head,
                dead,
                None if raw is None else raw[:cut],
            ),
            _Block(
                self.lines[cut:],
                self.keys[cut:],
                None if events is None else events[cut:],
                tail,
                self.dead[len(dead) :],
                None if raw is None else raw[cut:],
            ),
        )


class JsonlSource:
    """Reads one JSON-lines file in decoded blocks; undecodable lines become dead letters."""

    def __init__(
        self,
        path: Path,
        stream: Stream,
        ts_path: str = "ts",
        max_bytes: int = 1_048_576,
        block_bytes: int = BLOCK_BYTES,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        self.block_bytes = block_bytes
        self.byte_range = byte_range  # (start, end) at line starts: one shard of the file (replay --workers)
        self.stream = stream
        self._ts = FieldPath(ts_path)
        self._max_bytes = max_bytes
        self.bytes_read = 0
        self.lines_read = 0
        self.blank_lines = 0
        self._last_key = -np.inf

    def blocks(
        self,
        on_dead: Callable[[DeadLetter], None],
        decode: Callable[[list[bytes]], Decoded] | None = None,
    ) -> Iterator[_Block]:
        """Blocks of the file's messages; ``decode`` (feature and prediction files, when a typed decoder
        serves them) decodes them as the service does (what it refuses goes to ``on_dead`` here), else they
        are decoded into dicts (the lines that are not JSON objects travel with the block, to be written in
        line order with what the parser refuses)."""
        line_no = 0
        for size, lines in _lines(self.path, self.block_bytes, self.byte_range):
            self.bytes_read += size
            self.lines_read += len(lines)
            numbers = list(range(line_no + 1, line_no + 1 + len(lines)))
            line_no += len(lines)
            if _may_hold_blank(lines):  # per-line work only for the blocks that need it
                blank = {i for i, x in enumerate(lines) if not x.strip()}
                self.blank_lines += len(blank)
                lines = [x for i, x in enumerate(lines) if i not in blank]
                numbers = [n for i, n in enumerate(numbers) if i not in blank]
            if not lines:
                continue
            if decode is not None:
                decoded = decode(lines)
                for r in decoded.rejections:
                    on_dead(self._dead(numbers[r.index], r, lines[r.index]))
                keys = np.full(len(lines), np.nan)
                for batch in decoded.batches.values():
                    keys[batch.positions] = batch.rows.ts
                yield _Block(numbers, self._merge_keys(keys), decoded=decoded, raw=lines)
                continue
            events, kept, rejected = decode_batch(lines, self._max_bytes)
            dead = [self._dead(numbers[r.index], r, lines[r.index]) for r in rejected]
            if not events:  # nothing but dead letters: an empty block would stall the merge
                for d in dead:
                    on_dead(d)
                continue
            keys, _ = parse_timestamps(self._ts.get_all(events), "auto")
            yield _Block([numbers[i] for i in kept], self._merge_keys(keys), events=events, dead=dead)

    def _merge_keys(self, keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Sort keys for the merge: a message without a usable timestamp keeps its place in the file (the
        parser rejects it), and one out of order keeps the file's order (it arrives late)."""
        for i in np.flatnonzero(np.isnan(keys)):
            keys[i] = keys[i - 1] if i > 0 else self._last_key
        if len(keys):
            keys = np.maximum.accumulate(keys)
            self._last_key = float(keys[-1])
        return keys

    def _dead(self, line: int, r: Rejection, raw: bytes) -> DeadLetter:
        return DeadLetter(
            self.stream.value,
            str(self.path),
            line,
            r.reason.value,
            r.detail,
            raw[:2000].decode("utf-8", errors="replace"),
        )


def shard_ranges(path: Path, n: int) -> list[tuple[int, int]]:
    """``n`` byte ranges covering the file, each starting at a line start (some may be empty)."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as fh:
        for k in range(1, n):
            fh.seek(max(cuts[-1], size * k // n))
            if fh.tell() > 0:
                fh.seek(fh.tell() - 1)
                fh.readline()  # to the start of the next line (stays put when already at one)
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    return list(itertools.pairwise(cuts))


_WHITESPACE: Final = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() strips
_FIRST_BYTE: Final = operator.itemgetter(0)
_BUT_NEWLINE: Final = operator.itemgetter(slice(None, -1))


def _may_hold_blank(lines: list[bytes]) -> bool:
    r"""Whether some line may be blank (empty, or whitespace only): a blank line is empty or starts with
    whitespace, which one C-level pass over first bytes tells (a regular expression over the block's bytes
    cost about six times more).

    >>> _may_hold_blank([b'{"a":1}', b'{}']), _may_hold_blank([b"{}", b""]), _may_hold_blank([b"{}", b" \t"])
    (False, True, True)
    """
    return not all(lines) or not _WHITESPACE.isdisjoint(map(_FIRST_BYTE, lines))


_LAST_BYTE: Final = operator.itemgetter(slice(-1, None))  # one-byte bytes objects are cached: no allocation
READ_BUFFER: Final = 1 << 16


def _lines(
    path: Path, block_bytes: int = BLOCK_BYTES, byte_range: tuple[int, int] | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    r"""A file's whole lines (without their newline, nor a carriage return before it) a block of at least
    ``block_bytes`` at a time, with the bytes they took in the file; with ``byte_range``, those from ``start``
    to ``end`` (both at line starts) only.

    ``readlines`` finds the line ends with memchr as it reads, so each line is copied once out of the file's
    buffer and once without its newline: about a third of the instructions of reading the block, joining it
    to the last one's tail and splitting it again, and a third of the memory a block holds while it is split.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
    ...     _ = f.write(b'a\r\n\nbc\nd'); f.flush()
    ...     list(_lines(Path(f.name), 2)), list(_lines(Path(f.name), 1 << 20, (3, 7)))
    ([(3, [b'a']), (4, [b'', b'bc']), (1, [b'd'])], [(4, [b'', b'bc'])])
    """
    start, end = byte_range if byte_range is not None else (0, None)
    with path.open("rb", buffering=READ_BUFFER) as fh:
        fh.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            # readlines stops at the first line end past its hint, so a range (its end is a line start) ends
            # its last block at ``left - 1`` (a hint of 0 would be none)
            hint = block_bytes if left is None else min(block_bytes, left - 1)
            raw = fh.readlines(hint) if hint > 0 else [fh.readline()]
            if not raw or not raw[0]:
                return
            size = sum(map(len, raw))
            if left is not None:
                left -= size
            lines = list(map(_BUT_NEWLINE, raw))
            if not raw[-1].endswith(b"\n"):  # the file's last line, without a newline
                lines[-1] = raw[-1]
            if b"\r" in set(map(_LAST_BYTE, lines)):
                lines = [x[:-1] if x.endswith(b"\r") else x for x in lines]
            yield size, lines


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
