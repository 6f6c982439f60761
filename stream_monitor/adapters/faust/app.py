"""The Faust runtime: two Faust agents around the service's stage objects (an alternative to the worker loop).

``stream-monitor run`` does **not** use it; the hot path is the confluent-kafka loop of
:mod:`stream_monitor.adapters.kafka.worker`. Why, measured on faust-streaming 0.15.3 (see also ``../PITFALLS``):

* Exactness. The service's guarantee is that state and the input offsets it covers move together (a
  snapshot, then the commit of exactly the offsets it covers). Faust commits the offsets of acked events on
  its own timer, whatever our state; its at-least-once tables double count after a kill -9 (about 2 %), an
  exception inside an agent acks the message and a failing ``take()`` batch is committed and lost, and
  ``exactly_once`` did not work. Seeking every assigned partition back to our snapshot's offset behind Faust's
  fetcher fights its offset bookkeeping. This runtime is therefore at-least-once: correct in steady state, but
  a crash loses the open slices of the partitions it held (the worker loop loses nothing).
* Speed. Faust delivers events one by one through asyncio queues. Measured by ``scripts/bench_service.py``
  on the same 1M-event topic (2 shared cores): a Faust agent doing nothing but ``take_events(5000)`` and
  orjson decoding reached 4.7k events/s, the whole worker loop (decode, parse, fold, merge, test, snapshot)
  47.6k events/s, a bare confluent-kafka consume + decode loop 104k events/s.

What it does keep from Faust's good side: raw-bytes topics (Faust's codecs let NaN and Infinity through and
decode before an agent could catch anything, so the core decodes), agents of about ten lines that hand a batch
to the same stage classes the worker uses and publish what comes back, every exception caught inside the agent
body (the agent is reported down on ``/readyz`` and keeps consuming), ``stream_wait_empty=False`` (SIGTERM after
an agent error hung otherwise), no topic auto-declaration, and a web server that is off unless asked for, and
then bound to ``service.bind_host`` (Faust's default binds 0.0.0.0 and serves table contents).

>>> from stream_monitor.config.loading import parse_config
>>> broker_urls(parse_config({"models": {"m": {"reference": "r"}}, "kafka": {"bootstrap_servers": "a:1,b:2"}}))
['kafka://a:1', 'kafka://b:2']
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from stream_monitor.adapters.kafka.clients import Redactor, dead_letter_record
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import encode_alert
from stream_monitor.core.errors import ConfigError
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import ServiceModels
from stream_monitor.pipeline.counters import ServiceStats
from stream_monitor.pipeline.merge_partition import MergePartition
from stream_monitor.pipeline.partials import encode_partial
from stream_monitor.pipeline.partition_fold import PartitionFolder
from stream_monitor.pipeline.stage_reports import count_stage1, count_stage2, describe_alert, side_records

log = logging.getLogger(__name__)

TAKE_WITHIN_S: Final = 0.1
IDLE_CHECK_S: Final = 1.0


@dataclass(frozen=True)
class Outgoing:
    """One record for Faust's producer."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


@dataclass(frozen=True)
class Incoming:
    """What an agent needs from a Faust event: where it came from and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class StageRuntime:
    """The broker-free half of the Faust runtime: batches in, records to publish out; never raises."""

    def __init__(
        self,
        config: MonitorConfig,
        models: ServiceModels,
        stats: ServiceStats,
        sources: list[str],
        label_sources: list[str] | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.stats = stats
        self.sources = sources  # "topic:partition" of every feature and prediction partition
        self.label_sources = label_sources or []
        secrets = [
            v.get_secret_value() for v in config.kafka.client.values() if hasattr(v, "get_secret_value")
        ]
        self.scrub = Redactor(secrets).scrub
        t = config.topics
        self.streams = {
            t.features: Stream.FEATURES,
            t.predictions: Stream.PREDICTIONS,
            t.labels: Stream.LABELS,
        }
        self.folders: dict[tuple[str, int], PartitionFolder] = {}
        self.merges: dict[int, MergePartition] = {}

    def guard(
        self, agent: str, step: Callable[[list[Incoming]], list[Outgoing]], batch: list[Incoming]
    ) -> list[Outgoing]:
        """Run one agent step; an exception is logged and reported, never raised into Faust (which would ack
        and lose the batch, then restart the agent in a loop)."""
        try:
            out = step(batch)
        except Exception as exc:  # the agent body must not raise
            self.stats.set_agent(agent, False)
            log.error("%s failed on a batch of %d (%s: %s)", agent, len(batch), type(exc).__name__, exc)
            return []
        return out

    def stage1(self, batch: list[Incoming]) -> list[Outgoing]:
        t = self.config.topics
        out: list[Outgoing] = []
        for (topic, partition), items in _by_partition(batch).items():
            folder = self._folder(topic, partition)
            now = time.time()
            result = folder.process(
                [i.offset for i in items], [i.value for i in items], time.monotonic(), wall=now
            )
            out += [Outgoing(t.partials, p.model.encode(), encode_partial(p)) for p in result.partials]
            for r in result.rejections:
                item = items[r.index]
                value, headers = dead_letter_record(
                    item.value, r.reason.value, r.detail, topic, partition, item.offset, now, self.scrub
                )
                out.append(Outgoing(t.dlq, item.key, value, headers))
                self.stats.count_dead_letter(r.reason.value)
            count_stage1(self.stats, folder.stream.value, result, now)
        return out

    def _folder(self, topic: str, partition: int) -> PartitionFolder:
        folder = self.folders.get((topic, partition))
        if folder is None:
            folder = self.models.partition_folder(topic, partition, self.streams[topic], time.monotonic())
            self.folders[(topic, partition)] = folder
        return folder

    def idle(self, idle_seconds: float, assigned: Iterable[tuple[str, int]] | None = None) -> list[Outgoing]:
        """Idle promises of quiet input partitions. ``assigned``: the input partitions this process owns now;
        a folder is made for each (a partition that never sees an event still owes stage 2 its promise) and
        dropped for one taken away (its new owner re-reads it from the committed offset)."""
        if assigned is not None:
            owned = {(topic, partition) for topic, partition in assigned if topic in self.streams}
            for key in owned - self.folders.keys():
                self._folder(*key)
            for key in self.folders.keys() - owned:
                del self.folders[key]
        now = time.monotonic()
        partials = self.config.topics.partials
        return [
            Outgoing(partials, p.model.encode(), encode_partial(p))
            for f in self.folders.values()
            for p in f.idle_partials(now, idle_seconds)
        ]

    def stage2(self, batch: list[Incoming]) -> list[Outgoing]:
        t = self.config.topics
        out: list[Outgoing] = []
        for (topic, partition), items in _by_partition(batch).items():
            merge = self.merges.get(partition)
            if merge is None:
                merge = self.merges[partition] = self.models.merge_partition(
                    topic, partition, self.sources, self.label_sources
                )
            result = merge.process([i.offset for i in items], [i.value for i in items])
            count_stage2(self.stats, merge, result)
            out += [Outgoing(t.alerts, a.model_id.encode(), encode_alert(a)) for a in result.alerts]
            out += [
                Outgoing(r.topic, r.key.encode(), r.value)
                for r in side_records(result, t.window_stats, t.retraining)
            ]
            for a in result.alerts:
                log.info("alert %s", describe_alert(a))
        return out


def _by_partition(batch: Iterable[Incoming]) -> dict[tuple[str, int], list[Incoming]]:
    groups: dict[tuple[str, int], list[Incoming]] = {}
    for item in batch:
        groups.setdefault((item.topic, item.partition), []).append(item)
    return groups


def broker_urls(config: MonitorConfig) -> list[str]:
    return [f"kafka://{host.strip()}" for host in config.kafka.bootstrap_servers.split(",") if host.strip()]


def broker_credentials(client: Mapping[str, Any]) -> Any:
    """Faust's credentials object for the librdkafka security settings of ``kafka.client`` (None: plaintext)."""
    import ssl

    import faust

    protocol = str(client.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=client.get("ssl.ca.location"))
        if client.get("ssl.certificate.location"):
            context.load_cert_chain(
                client["ssl.certificate.location"],
                client.get("ssl.key.location"),
                client.get("ssl.key.password"),
            )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = str(client.get("sasl.mechanism", client.get("sasl.mechanisms", "PLAIN"))).upper()
    if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ConfigError(
            [("kafka.client.sasl.mechanism", f"the Faust runtime does not support {mechanism}")]
        )
    return faust.SASLCredentials(
        username=client.get("sasl.username"),
        password=client.get("sasl.password"),
        mechanism=mechanism,
        ssl_context=context,
    )


def create_app(
    config: MonitorConfig,
    models: ServiceModels,
    stats: ServiceStats,
    sources: list[str],
    *,
    label_sources: list[str] | None = None,
    inputs: list[str] | None = None,
    web_enabled: bool = False,
    web_port: int = 6066,
    datadir: str | None = None,
) -> Any:
    """A new Faust app running stage 1 and stage 2 (there is no module-level app; every call builds one).

    ``sources`` and ``label_sources`` name every ``topic:partition`` stage 2 waits for (as the worker
    loop's do); ``inputs`` are the input topics to read (default: features, predictions and labels).
    ``datadir``: where Faust keeps its files (it makes a ``<app>-data`` folder in the working directory
    otherwise, though this app keeps no tables there); default a new temporary folder."""
    import faust

    svc, t = config.service, config.topics
    app = faust.App(
        f"{svc.consumer_group}-faust",
        broker=broker_urls(config),
        broker_credentials=broker_credentials(config.kafka.client_settings()),
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        # what a crash re-reads (the duplicates of at least once) is what was acked since the last commit
        broker_commit_interval=svc.snapshot_seconds,
        stream_wait_empty=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        store="memory://",
        web_enabled=web_enabled,
        web_bind=svc.bind_host,
        web_port=web_port,
        datadir=datadir or tempfile.mkdtemp(prefix="stream-monitor-faust-"),
    )
    runtime = StageRuntime(config, models, stats, sources, label_sources)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "allow_empty": True,
    }
    input_topics = app.topic(*(inputs or [t.features, t.predictions, t.labels]), **raw)
    partials = app.topic(t.partials, **raw)

    async def publish(records: list[Outgoing]) -> None:
        for r in records:
            await app.producer.send(
                r.topic, r.key, r.value, partition=None, timestamp=None, headers=r.headers
            )

    @app.agent(input_topics, name="stage1")
    async def stage1(stream: Any) -> None:
        stats.set_agent("stage1", True)
        async for events in stream.take_events(svc.batch_max_events, within=TAKE_WITHIN_S):
            await publish(runtime.guard("stage1", runtime.stage1, [_incoming(e) for e in events]))
            await publish(runtime.guard("stage1", lambda _: runtime.idle(svc.idle_partition_seconds), []))

    @app.timer(interval=IDLE_CHECK_S)  # type: ignore[untyped-decorator]
    async def idle_sources() -> None:
        # a partition that went quiet still owes stage 2 its idle promise (the agent only runs on events)
        assigned = [(tp.topic, tp.partition) for tp in app.consumer.assignment()]
        await publish(
            runtime.guard("stage1", lambda _: runtime.idle(svc.idle_partition_seconds, assigned), [])
        )

    @app.agent(partials, name="stage2")
    async def stage2(stream: Any) -> None:
        stats.set_agent("stage2", True)
        async for events in stream.take_events(svc.batch_max_events, within=TAKE_WITHIN_S):
            await publish(runtime.guard("stage2", runtime.stage2, [_incoming(e) for e in events]))

    return app


def _incoming(event: Any) -> Incoming:
    m = event.message
    return Incoming(m.topic, m.partition, m.offset, m.key, m.value)
