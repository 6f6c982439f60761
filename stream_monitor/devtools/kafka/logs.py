"""Reading a broker's logs for an error message: the tail of a file or of a tool's output, and the first ERROR
lines of a Kafka log (a broker's own shutdown buries the cause at the end)."""

from __future__ import annotations

import os
from pathlib import Path


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return _tail_text(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return "(missing)"


def _first_errors(path: Path, errors: int = 3) -> str:
    """The first ERROR lines of a Kafka log, each with the exception line under it."""
    found: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = iter(f)
            for line in lines:
                if "] ERROR " in line or "] FATAL " in line:
                    found += [line.rstrip(), next(lines, "").rstrip()]
                    if len(found) >= 2 * errors:
                        break
    except OSError:
        return "(missing)"
    return "\n".join(found) or "(none)"
