"""Reading JSON-lines files for replay: whole lines a block at a time (or one byte range of a file, for
``replay --workers``), decoded as the service decodes them, with the undecodable lines as dead letters.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from stream_monitor.core.events import FieldPath, Rejection, Stream, decode_batch, parse_timestamps
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
