"""``run --runtime faust``: the Faust app of :mod:`stream_monitor.adapters.faust.app` under a Faust worker.

The runner has the worker loop's shape (built once the broker answered, then ``run(stop)`` until a signal), so
``stream-monitor run`` probes the broker, serves ``/metrics`` and turns fatal Kafka causes into exit codes the
same way for both runtimes. Faust's worker installs its own SIGTERM/SIGINT handlers when it starts and stops
its agents on them.
"""

from __future__ import annotations

import logging
import shutil
import threading
from typing import Any

from stream_monitor.adapters.faust.app import create_app
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.pipeline.assembly import ServiceModels
from stream_monitor.pipeline.counters import ServiceStats

log = logging.getLogger(__name__)


class FaustRunner:
    """Stage 1 and stage 2 as Faust agents, reading the topics that exist (as the worker loop does)."""

    def __init__(self, config: MonitorConfig, models: ServiceModels, stats: ServiceStats, admin: Any) -> None:
        t = config.topics
        metadata = admin.list_topics(timeout=10).topics

        def partitions(name: str) -> int:
            topic = metadata.get(name)
            return 0 if topic is None or topic.error is not None else len(topic.partitions)

        inputs = [name for name in (t.features, t.predictions, t.labels) if partitions(name)]
        sources = [f"{name}:{p}" for name in (t.features, t.predictions) for p in range(partitions(name))]
        label_sources = [f"{t.labels}:{p}" for p in range(partitions(t.labels))]
        self.app = create_app(config, models, stats, sources, label_sources=label_sources, inputs=inputs)
        self.stats = stats

    def run(self, stop: threading.Event) -> int:
        """Run the Faust worker until it is signalled to stop; its exit code."""
        import faust

        if stop.is_set():
            return 0
        self.stats.set_restoring(False)  # this runtime keeps no state across restarts: nothing to restore
        worker = faust.Worker(self.app, loglevel=logging.INFO, override_logging=False, redirect_stdouts=False)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            shutil.rmtree(str(self.app.conf.datadir), ignore_errors=True)
        return 0
