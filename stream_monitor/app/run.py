"""``stream-monitor run``: load the config, serve metrics, run the worker until SIGTERM or SIGINT.

On a signal the worker stops consuming, finishes the batch in hand, writes and commits final snapshots,
flushes
its producer and leaves the group; the process then exits 0. A watchdog bounds this: if shutdown has not
finished ``SHUTDOWN_DEADLINE_S`` after the signal (a broker gone away, say), the process exits 1 at once: the
last committed snapshots stand, so nothing is lost, only replayed by the next owner.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Final

from stream_monitor.pipeline.counters import ServiceStats

log = logging.getLogger("stream_monitor.run")

SHUTDOWN_DEADLINE_S: Final = 9.0
FAULT_ENV: Final = "STREAM_MONITOR_FAULT_AFTER_BATCHES"  # test hook: fail every batch after this many


def _fault_after() -> int | None:
    raw = os.environ.get(FAULT_ENV)
    return int(raw) if raw and raw.isdigit() else None


def run_service(config_path: Path) -> int:
    """Run until a signal; returns the process exit code."""
    from stream_monitor.adapters.kafka.clients import ProducerFatalError
    from stream_monitor.adapters.kafka.worker import Worker
    from stream_monitor.adapters.prometheus.metrics import start_metrics_server
    from stream_monitor.app.compose import build_service
    from stream_monitor.config.loading import load_config

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    config = load_config(config_path)
    models = build_service(config)
    stats = ServiceStats(max_series=config.service.max_label_cardinality)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info(
                "%s: finishing the batch, writing snapshots, leaving the group", signal.Signals(signum).name
            )
            stop.set()
            watchdog = threading.Timer(SHUTDOWN_DEADLINE_S, _too_slow)
            watchdog.daemon = True
            watchdog.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    svc = config.service
    server = start_metrics_server(stats, svc.bind_host, svc.metrics_port)
    log.info("metrics on %s/metrics (also /healthz, /readyz)", server.url)
    try:
        worker = Worker(config, models, stats, fault_after_batches=_fault_after())
        worker.run(stop)
    except ProducerFatalError as exc:
        log.error("producer failed fatally: %s", exc)
        return 1
    except LookupError as exc:
        log.error("%s", exc)
        return 2
    finally:
        server.stop()
    log.info("stopped cleanly")
    return 0


def _too_slow() -> None:
    log.error(
        "shutdown did not finish within %.0f s; exiting (last committed snapshots stand)", SHUTDOWN_DEADLINE_S
    )
    logging.shutdown()
    os._exit(1)
