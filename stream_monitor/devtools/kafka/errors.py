"""The errors of the local broker: one for the user (what failed and what to do), one retried internally."""

from __future__ import annotations

__all__ = ["DevKafkaError"]


class DevKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why and what to do."""


class _PortTakenError(DevKafkaError):
    """The JVM could not bind a port that was free a moment before; worth a retry on other ports."""
