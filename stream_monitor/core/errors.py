"""Every exception stream-monitor raises on purpose lives here.

Bad *events* never raise: they become :class:`stream_monitor.core.events.Rejection` values. These exceptions
are for bad configuration, bad reference files and misuse of the API, where stopping is right.
"""

from __future__ import annotations

from collections.abc import Sequence


class StreamMonitorError(Exception):
    """Base class: catch this to handle every deliberate stream-monitor failure."""


class ConfigError(StreamMonitorError):
    """The config file is unreadable or invalid. ``problems`` holds one ``(path, message)`` per error.

    ``lines`` holds, per problem, the line of the config file it is on (``None`` where there is none, e.g. a
    config that did not come from a file); :meth:`report` and the message list the problems in line order.

    >>> print(ConfigError([("a.b", "unknown key"), ("a", "too big")], "c.yaml", [7, 3]))
    c.yaml: 2 problem(s)
      c.yaml:3: a: too big
      c.yaml:7: a.b: unknown key
    """

    def __init__(
        self,
        problems: list[tuple[str, str]],
        source: str = "config",
        lines: Sequence[int | None] | None = None,
    ) -> None:
        self.problems = problems
        self.source = source
        self.lines: list[int | None] = list(lines) if lines is not None else [None] * len(problems)
        if len(self.lines) != len(problems):
            raise ValueError("ConfigError needs one line (or None) per problem")
        body = "\n".join(f"  {row}" for row in self._rows(with_source=False))
        super().__init__(f"{source}: {len(problems)} problem(s)\n{body}")

    def report(self) -> list[str]:
        """One line per problem, in line order: ``config.yaml:12: models.m.window.max_event: unknown key``."""
        return self._rows(with_source=True)

    def _rows(self, with_source: bool) -> list[str]:
        order = sorted(range(len(self.problems)), key=lambda i: self.lines[i] or 0)
        rows = []
        for i in order:
            path, message = self.problems[i]
            line = self.lines[i]
            what = f"{path}: {message}" if path else message
            if line is not None:
                rows.append(f"{self.source}:{line}: {what}")
            else:
                rows.append(f"{self.source}: {what}" if with_source else what)
        return rows


class ReferenceProfileError(StreamMonitorError):
    """A reference profile could not be built or loaded."""


class ReportInputError(StreamMonitorError):
    """A file given to the report is not what it should hold (names the file and line)."""


class SnapshotError(StreamMonitorError):
    """A state snapshot is corrupt or of an unsupported version."""


class UnknownDetectorError(StreamMonitorError, ValueError):
    """A detector name is not registered; the message lists the valid names."""

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown detector {name!r}; valid detectors: {', '.join(sorted(valid))}")


class KafkaUnavailableError(StreamMonitorError):
    """Kafka cannot be used, for a cause no retry can fix (or, for a one-shot command, not in time).

    ``kind`` names the class of cause (``authentication``, ``tls``, ``client_config``, ...), ``exit_code`` the
    process exit code the CLI uses for it (docs/operations.md lists them); the message is one paragraph that
    names the setting to check.
    """

    def __init__(self, kind: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code
