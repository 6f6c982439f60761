"""Every exception stream-monitor raises on purpose lives here.

Bad *events* never raise: they become :class:`stream_monitor.core.events.Rejection` values. These exceptions
are for bad configuration, bad reference files and misuse of the API, where stopping is right.
"""

from __future__ import annotations


class StreamMonitorError(Exception):
    """Base class: catch this to handle every deliberate stream-monitor failure."""


class ConfigError(StreamMonitorError):
    """The config file is unreadable or invalid. ``problems`` holds one ``(path, message)`` per error."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class ReferenceProfileError(StreamMonitorError):
    """A reference profile could not be built or loaded."""


class SnapshotError(StreamMonitorError):
    """A state snapshot is corrupt or of an unsupported version."""


class UnknownDetectorError(StreamMonitorError, ValueError):
    """A detector name is not registered; the message lists the valid names."""

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown detector {name!r}; valid detectors: {', '.join(sorted(valid))}")
