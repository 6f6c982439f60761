"""``stream-monitor run``: load the config, serve metrics, run the worker until SIGTERM or SIGINT.

On a signal the worker stops consuming, finishes the batch in hand, writes and commits final snapshots,
flushes
its producer and leaves the group; the process then exits 0. A watchdog bounds this: if shutdown has not
finished ``SHUTDOWN_DEADLINE_S`` after the signal (a broker gone away, say), the process exits 1 at once: the
last committed snapshots stand, so nothing is lost, only replayed by the next owner.

Before the worker starts, the broker is probed (:func:`~stream_monitor.adapters.kafka.faults.wait_for_kafka`):
while it cannot be reached the service stays up, retries with backoff and ``/readyz`` answers 503 with the
reason; a cause no retry can fix (authentication, TLS, a refused client setting, missing topics) raises
:class:`~stream_monitor.core.errors.KafkaUnavailableError`, which the CLI prints as one paragraph and turns into
its exit code.
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


RUNTIMES: Final = ("native", "faust")


def run_service(config_path: Path, runtime: str = "native") -> int:
    """Run until a signal; returns the process exit code (raises KafkaUnavailableError for a fatal cause).

    ``runtime``: ``native`` (the confluent-kafka worker loop: state exact through snapshots carrying offsets)
    or ``faust`` (the same stages as Faust agents: at least once, see docs/operations.md)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; the runtimes are {', '.join(RUNTIMES)}")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from stream_monitor.adapters.kafka.clients import ProducerFatalError, Redactor, without_consumer_settings
    from stream_monitor.adapters.kafka.faults import (
        EXIT_CODES,
        Fault,
        KafkaWatch,
        kafka_error,
        wait_for_kafka,
    )
    from stream_monitor.adapters.kafka.worker import Worker, required_topics
    from stream_monitor.adapters.prometheus.metrics_server import start_metrics_server
    from stream_monitor.app.compose import build_service
    from stream_monitor.config.loading import load_config
    from stream_monitor.core.errors import KafkaUnavailableError

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    config = load_config(config_path)
    models = build_service(config)
    stats = ServiceStats(max_series=config.service.max_label_cardinality)
    stop = threading.Event()
    bootstrap = config.kafka.bootstrap_servers
    redactor = Redactor(
        v.get_secret_value() for v in config.kafka.client.values() if hasattr(v, "get_secret_value")
    )
    watch = KafkaWatch(bootstrap, redactor.scrub)

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
    server = start_metrics_server(stats, svc.bind_host, svc.metrics_port, not_ready=watch.not_ready)
    log.info("metrics on %s/metrics (also /healthz, /readyz)", server.url)
    source = str(config_path)
    try:
        worker = None
        faust_runner = None
        while worker is None and not stop.is_set():
            try:
                admin = AdminClient(
                    {**without_consumer_settings(config.kafka.client_settings()), **watch.hooks()}
                )
                if not wait_for_kafka(admin, watch, required_topics(config), source, stop):
                    break
                if runtime == "faust":
                    from stream_monitor.adapters.faust.runner import FaustRunner

                    faust_runner = FaustRunner(config, models, stats, admin)
                    break
                worker = Worker(config, models, stats, fault_after_batches=_fault_after(), watch=watch)
            except KafkaException as exc:
                fatal = kafka_error(exc, source, bootstrap, redactor.scrub)
                if fatal is not None:
                    raise fatal from None
                # The broker went away between the probe and the worker's start: probe again.
                log.warning(
                    "Kafka failed while starting (%s); waiting for it again", redactor.scrub(str(exc))
                )
                watch.waiting(f"waiting for Kafka at {bootstrap}: {redactor.scrub(str(exc))}")
        if worker is not None:
            worker.run(stop)
        elif faust_runner is not None:
            code = faust_runner.run(stop)
            if code:
                return code
    except ProducerFatalError as exc:
        log.error("producer failed fatally: %s", exc)
        return 1
    except LookupError as exc:  # a topic deleted between the probe and the worker's start
        raise KafkaUnavailableError(
            Fault.MISSING_TOPICS.value,
            f"{exc} (exit {EXIT_CODES[Fault.MISSING_TOPICS]})",
            EXIT_CODES[Fault.MISSING_TOPICS],
        ) from None
    except KafkaException as exc:  # a client call failed past every retry: no traceback, a restart resumes
        fatal = kafka_error(exc, source, bootstrap, redactor.scrub)
        if fatal is not None:
            raise fatal from None
        log.error(
            "Kafka client failed: %s; exiting (the last committed snapshots stand)", redactor.scrub(str(exc))
        )
        return 1
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
