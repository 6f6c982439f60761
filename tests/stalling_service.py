"""Test-only launcher: ``stream-monitor`` whose processing thread stalls once, for the slow-consumer test.

Run as ``python tests/stalling_service.py run --config ...`` (the CLI's arguments). With ``STALL_TRIGGER``
naming a file, the first batch of messages handled after that file appears (whichever stage its partitions
belong to) sleeps ``STALL_SECONDS`` before it is processed, once; the file is then rewritten with when the stall
began and ended (``<start> <end>``, epoch seconds). Only the thread that calls ``consume()`` sleeps:
librdkafka's own threads keep heartbeating and fetching, so the group sees a member that stopped polling
(``max.poll.interval.ms`` runs out), not one that died (SIGSTOP would freeze those threads too, a different
fault). The product is patched here, in the test's process, never given a hook for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stream_monitor.adapters.kafka import worker_batches


def install(trigger: Path, seconds: float) -> None:
    """Make :meth:`PartitionBatches._handle` stall once, at its first call after ``trigger`` exists."""
    original: Callable[..., None] = worker_batches.PartitionBatches._handle
    stalled = False

    def stalling(self: Any, messages: Sequence[Any]) -> None:
        nonlocal stalled
        if not stalled and trigger.exists():
            stalled = True
            started = time.time()
            time.sleep(seconds)  # the fault itself: the processing thread stops this long
            trigger.write_text(f"{started} {time.time()}\n")
        original(self, messages)

    worker_batches.PartitionBatches._handle = stalling  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(os.environ["STALL_TRIGGER"]), float(os.environ["STALL_SECONDS"]))
    from stream_monitor.cli import main

    main()
