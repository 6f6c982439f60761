"""Where the local broker's files live: the cache dir, one run dir per port, and the file names in them.

Everything lives under :func:`cache_dir`::

    kafka-<version>/libs/          the jars (fetched once; ``libs.complete`` is written last)
    run/kafka-<port>/              one running broker: server.properties, broker.pid,
                                   server.log (log4j2), kafka.out (JVM stdout/stderr), data/ (temporary)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_KAFKA_VERSION", "HOST", "cache_dir"]

DEFAULT_KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "pom.xml"
_LOG4J2_XML = _HERE / "log4j2.xml"
_MARKER = "libs.complete"
_PID_FILE = "broker.pid"
_SERVER_LOG = "server.log"
_JVM_OUT = "kafka.out"
_STALE_RUN_AGE_S = 24 * 3600


def _checkout_root() -> Path | None:
    """The repository root when this package runs from a git checkout (editable install), else None."""
    root = _HERE.parents[2]
    if (root / ".git").exists() and (root / "pyproject.toml").is_file():
        return root
    return None


def cache_dir() -> Path:
    """Where jars, broker logs and temporary broker data go.

    ``$STREAM_MONITOR_CACHE_DIR`` if set; else ``<repo>/.cache`` in a git checkout (git-ignored, so a fresh
    clone in CI fetches into its own tree); else ``$XDG_CACHE_HOME/stream-monitor`` (``~/.cache/...``).
    """
    env = os.environ.get("STREAM_MONITOR_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = _checkout_root()
    if root is not None:
        return root / ".cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "stream-monitor"


def _run_dir(port: int, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "run" / f"kafka-{port}"
