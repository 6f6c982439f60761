"""Reading JSON-lines files of events (for ``reference build``), with a progress bar on large inputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stream_monitor.core.events import decode_batch

_PROGRESS_MIN_BYTES = 20_000_000


def read_jsonl_events(path: Path, bad: dict[str, int], block_lines: int = 4096) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``path``; lines that are not become ``bad[f"{file}: {reason}"]`` counts."""
    size = path.stat().st_size
    show = size >= _PROGRESS_MIN_BYTES and sys.stderr.isatty()
    with (
        path.open("rb") as fh,
        tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=not show) as bar,
    ):
        while True:
            lines = fh.readlines(block_lines * 256)
            if not lines:
                return
            bar.update(sum(len(x) for x in lines))
            stripped = [x.rstrip(b"\r\n") for x in lines if x.strip()]
            events, _, rejected = decode_batch(stripped)
            for r in rejected:
                key = f"{path.name}: {r.reason.value}"
                bad[key] = bad.get(key, 0) + 1
            yield from events
