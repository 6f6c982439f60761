"""A work folder for a benchmark run: the one asked for, kept, or a temporary one removed at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def work_folder(kept: Path | None, prefix: str) -> Iterator[Path]:
    """``kept`` (made if absent, left in place), else a new temporary folder removed at the end."""
    folder = kept or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        if kept is None:
            shutil.rmtree(folder, ignore_errors=True)
