"""A broker for the length of a run: the one in ``$KAFKA_BOOTSTRAP_SERVERS``, else a local one started for it."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager

from stream_monitor.devtools.kafka.broker import LocalBroker


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of a real broker: ``$KAFKA_BOOTSTRAP_SERVERS``, else one started here and stopped
    at the end.

    die_with_parent: a run killed hard (timeout, segfault) takes its broker with it; atexit covers an
    interpreter exit that skips the clean-up. ``stop()`` is idempotent, so both may run.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = LocalBroker(die_with_parent=True)
    atexit.register(broker.stop)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        atexit.unregister(broker.stop)
