"""The commit and uncommitted changes of the package a benchmark measured, so a figure can be traced to its code."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any


def source_state(root: Path) -> dict[str, Any]:
    """``commit`` (short hash, None outside a git checkout), ``stream_monitor_dirty`` and a hash of the diff."""

    def git(*args: str) -> str:
        cmd = ["git", "--no-optional-locks", *args]
        return subprocess.run(cmd, cwd=root, capture_output=True, check=False).stdout.decode().strip()

    diff = git("diff", "HEAD", "--", "stream_monitor")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "stream_monitor_dirty": bool(diff),
        "stream_monitor_diff_sha": hashlib.sha256(diff.encode()).hexdigest()[:10] if diff else None,
    }
