"""How the local broker is configured: its ``server.properties`` (single-node KRaft, tuned for a fast, small,
loopback-only test broker), its JVM options and a fresh cluster id."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path

from stream_monitor.devtools.kafka.locations import _LOG4J2_XML, HOST


def _cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, no padding, no leading '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _server_properties(port: int, controller_port: int, data: Path, extra: Mapping[str, str]) -> str:
    """A single-node KRaft config tuned for a fast, small, loopback-only test broker."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static single-voter quorum: the controller port can change between restarts of a kept data dir.
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        # One replica of everything: there is one broker.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Internal topics with 50 partitions each make the first consumer group or transaction slow.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Tests and the demo create their topics explicitly; a typo must not silently create one.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # A joining consumer is assigned at once instead of after 3 s.
        "group.initial.rebalance.delay.ms": "0",
        # The log cleaner would reserve 128 MiB of a 512 MiB heap.
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    props.update(extra)
    lines = ["# Written by stream_monitor/devtools/kafka/broker.py for a local development/test broker."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


SCRAM_MECHANISM = "SCRAM-SHA-512"


def extra_listener_properties(
    port: int,
    controller_port: int,
    sasl_port: int | None = None,
    tls_port: int | None = None,
    tls_keystore: Path | None = None,
    tls_keystore_password: str = "",
) -> dict[str, str]:
    """The properties that add a SASL_PLAINTEXT listener (SCRAM) and/or an SSL listener (a PKCS12 keystore)
    beside the plaintext one, which the broker itself and the readiness probe keep using."""
    listeners = [f"PLAINTEXT://{HOST}:{port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    props: dict[str, str] = {}
    if sasl_port is not None:
        listeners.append(f"SASL_PLAINTEXT://{HOST}:{sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props["sasl.enabled.mechanisms"] = SCRAM_MECHANISM
        props[f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    if tls_port is not None:
        assert tls_keystore is not None
        listeners.append(f"SSL://{HOST}:{tls_port}")
        protocols.append("SSL:SSL")
        props.update(
            {
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(tls_keystore),
                "ssl.keystore.password": tls_keystore_password,
                "ssl.key.password": tls_keystore_password,
            }
        )
    return {
        "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocols),
        **props,
    }


def _jvm_options(heap: str, run_dir: Path) -> list[str]:
    return [
        f"-Xmx{heap}",
        "-Xss1m",
        # Serial GC and C1-only JIT start the JVM about a second faster; ample for test/demo traffic.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={run_dir}",
        f"-Dlog4j2.configurationFile={_LOG4J2_XML}",
    ]
