"""``stream-monitor demo``: the whole service on this machine, on an embedded default.

Starts (or reuses, via ``KAFKA_BOOTSTRAP_SERVERS``) a local Kafka broker, builds a reference profile from the
bundled ``examples/reference`` and a config with ``config init``'s defaults, creates the topics, starts the
monitor (``stream-monitor run``) and a synthetic producer whose stream drifts after ``--drift-after`` seconds,
and prints every alert event from the alerts topic as it fires. Ctrl-C (or ``--duration``) stops everything
it started, in reverse order, then writes the HTML report (``report.html``) of the alerts and of the window
statistics the monitor published to its ``window_stats`` topic; its counts come from the monitor's /metrics.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from stream_monitor.adapters.files.reference_file import save_reference
from stream_monitor.app.demo_offline import TIME_LEGEND, describe_workdir, examples_dir, prepare_workdir
from stream_monitor.core.alerts import format_alert
from stream_monitor.core.errors import StreamMonitorError

STATUS_EVERY_SECONDS = 15.0

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_value(text: str, key: str, new: Callable[[str], str]) -> str:
    """Replace the value of the one ``  key: value`` line of a two-space-indented YAML key, keeping comments."""
    pattern = re.compile(rf"^(  {re.escape(key)}: )([^\s#]+)", re.MULTILINE)
    found = pattern.findall(text)
    if len(found) != 1:
        raise RuntimeError(
            f"demo config: expected one {key!r} line in the config template, found {len(found)}"
        )
    return pattern.sub(lambda m: m.group(1) + new(m.group(2).strip('"')), text)


def _write_config(work: Path, bootstrap: str, metrics_port: int, suffix: str) -> Path:
    from stream_monitor.adapters.files.jsonl import read_jsonl_events
    from stream_monitor.config.loading import load_config
    from stream_monitor.config.template import render_config
    from stream_monitor.stats.reference_builder import ReferenceBuilder

    ex = examples_dir()
    builder = ReferenceBuilder()
    bad: dict[str, int] = {}
    for name, add in (
        ("features", builder.add_features),
        ("predictions", builder.add_predictions),
        ("labels", builder.add_labels),
    ):
        add(read_jsonl_events(ex / "reference" / f"{name}.jsonl", bad))
    reference = builder.build()
    save_reference(reference, work / "reference.json")
    text = render_config(reference, "reference.json")
    # Every topic and the consumer group get a run suffix, so a reused broker never mixes two demos' streams or
    # restores one demo's state into another. Lines may carry comments: replace the value only.
    for key in ("features", "predictions", "labels", "features_batch", "alerts", "dlq", "partials", "state"):
        text = _set_value(text, key, lambda v: f"{v}-{suffix}")
    text = _set_value(text, "window_stats", lambda _: f"window-stats-{suffix}")  # for the report's timelines
    text = _set_value(text, "consumer_group", lambda v: f"{v}-demo-{suffix}")
    text = _set_value(text, "bootstrap_servers", lambda _: f'"{bootstrap}"')
    text = _set_value(text, "metrics_port", lambda _: str(metrics_port))
    path = work / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    named = [*config.topics.model_dump().values(), config.service.consumer_group]
    unsuffixed = [t for t in named if isinstance(t, str) and suffix not in t]
    if (
        unsuffixed
    ):  # the template changed shape: fail here, not with a demo that shares state with the last one
        raise RuntimeError(f"demo config: no run suffix on {unsuffixed}")
    return path


def status_line(metrics_text: str) -> str:
    """One line from the monitor's /metrics: events in, windows tested, the signal nearest to its threshold.

    >>> status_line('''stream_monitor_events_total{model="m",stream="features",outcome="accepted"} 1200.0
    ... stream_monitor_windows_tested_total{model="m"} 3.0
    ... stream_monitor_drift_statistic{model="m",kind="covariate_drift",signal="x",detector="psi"} 0.05
    ... stream_monitor_drift_threshold{model="m",kind="covariate_drift",signal="x",detector="psi"} 0.1
    ... ''')
    'status: 1,200 events in, 3 windows tested; nearest to its threshold: x (psi 0.05 of 0.1)'
    """
    from prometheus_client.parser import text_string_to_metric_families

    events = windows = 0.0
    statistic: dict[tuple[str, str, str], float] = {}
    threshold: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("signal", ""), labels.get("detector", ""))
            if sample.name == "stream_monitor_events_total" and labels.get("outcome") == "accepted":
                events += sample.value
            elif sample.name == "stream_monitor_windows_tested_total":
                windows += sample.value
            elif sample.name == "stream_monitor_drift_statistic":
                statistic[key] = sample.value
            elif sample.name == "stream_monitor_drift_threshold":
                threshold[key] = sample.value
    line = f"status: {events:,.0f} events in, {windows:,.0f} windows tested"
    ratios = {k: v / threshold[k] for k, v in statistic.items() if threshold.get(k, 0) > 0}
    if ratios:
        key = max(ratios, key=lambda k: ratios[k])
        _, signal, detector = key
        line += (
            f"; nearest to its threshold: {signal} ({detector} {statistic[key]:.3g} of {threshold[key]:.3g})"
        )
    return line


def _write_report(work: Path, config_path: Path, metrics_text: str | None) -> None:
    """The HTML report of the demo's alerts, with the monitor's last counts (when /metrics answered)."""
    from stream_monitor.app.report import metrics_counts, read_alerts, read_stats, write_report
    from stream_monitor.config.loading import load_config
    from stream_monitor.report.model import DeadLetterTally

    accepted: dict[str, dict[str, int]] | None = None
    tally = DeadLetterTally()
    if metrics_text is not None:
        accepted, dead = metrics_counts(metrics_text)
        for reason, n in dead.items():
            tally.add_count("(all streams)", reason, n)  # the service counts dead letters by reason only
    stats_file = work / "window_stats.jsonl"
    write_report(
        work / "report.html",
        load_config(config_path),
        list(read_alerts(work / "alerts.jsonl")),
        list(read_stats(stats_file)) if stats_file.exists() else [],
        tally,
        accepted=accepted,
        sources=[
            "stream-monitor demo: the alerts and window_stats topics, and the monitor's /metrics as it stopped"
        ],
        stats_recorded=stats_file.exists(),
    )


def _fetch(url: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own loopback endpoint)
            return str(response.read().decode("utf-8"))
    except OSError:
        return None


def _die_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM it when the demo dies, even by SIGKILL, so a killed demo
    leaves no monitor or producer running. Elsewhere a no-op: Ctrl-C and SIGTERM still stop everything."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[Any], name: str, echo: Callable[[str], None], grace: float = 12.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        echo(f"{name} did not stop within {grace:.0f}s; killing it")
        proc.kill()
        proc.wait()


def run_kafka_demo(
    rate: float = 100.0,
    drift_after: float = 60.0,
    duration: float | None = None,
    echo: Callable[[str], None] = click.echo,
    workdir: Path | None = None,
) -> int:
    from confluent_kafka import Consumer

    from stream_monitor.adapters.kafka.faults import EXIT_CODES
    from stream_monitor.adapters.kafka.topics import create_all
    from stream_monitor.config.loading import load_config
    from stream_monitor.core.alerts import decode_alert

    stopping = [False]

    def on_signal(signum: int, frame: object) -> None:
        stopping[0] = True

    previous = signal.signal(signal.SIGTERM, on_signal)
    work = prepare_workdir(workdir)
    with ExitStack() as stack:
        stack.callback(signal.signal, signal.SIGTERM, previous)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            echo(f"using the Kafka broker at {bootstrap}")
        else:
            from stream_monitor.devtools.kafka import LocalBroker

            echo("starting a local Kafka broker (the first run fetches it from Maven Central) ...")
            broker = LocalBroker(die_with_parent=True).start()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
            echo(f"Kafka broker ready at {bootstrap}")
        suffix = f"{int(time.time())}-{os.getpid()}"
        metrics_port = _free_port()
        config_path = _write_config(work, bootstrap, metrics_port, suffix)
        config = load_config(config_path)
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        create_all(
            config, f"{config_path} (its broker is KAFKA_BOOTSTRAP_SERVERS)" if external else str(config_path)
        )
        echo(f"topics created; config at {config_path} (config init defaults for the examples' model)")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        monitor = subprocess.Popen(
            [sys.executable, "-m", "stream_monitor.cli", "run", "--config", str(config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "monitor.log", "wb"),  # noqa: SIM115
            preexec_fn=_die_with_parent,
        )
        stack.callback(_stop, monitor, "monitor", echo)
        producer = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "scripts" / "produce_synthetic.py"),
                "--config",
                str(config_path),
                "--rate",
                str(rate),
                "--drift-after",
                str(drift_after),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(work / "producer.log", "wb"),  # noqa: SIM115
            preexec_fn=_die_with_parent,
        )
        stack.callback(_stop, producer, "producer", echo)
        echo(f"metrics: http://127.0.0.1:{metrics_port}/metrics  (health: /healthz, readiness: /readyz)")
        echo(
            f"producing {rate:g} events/s; the stream drifts after {drift_after:g}s "
            "(num_00 mean shift, then a new cat_00 category, then a score shift). Ctrl-C stops the demo."
        )
        consumer = Consumer(
            {
                **config.kafka.client_settings(),
                "group.id": f"demo-printer-{suffix}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        stack.callback(consumer.close)
        stats_topic = config.topics.window_stats
        consumer.subscribe([config.topics.alerts, *([stats_topic] if stats_topic else [])])
        alerts_file = stack.enter_context((work / "alerts.jsonl").open("ab"))
        stats_file = stack.enter_context((work / "window_stats.jsonl").open("ab"))
        echo(TIME_LEGEND)
        deadline = None if duration is None else time.monotonic() + duration
        next_status = time.monotonic() + STATUS_EVERY_SECONDS
        try:
            while not stopping[0] and (deadline is None or time.monotonic() < deadline):
                if monitor.poll() is not None:
                    echo(f"the monitor exited with code {monitor.returncode}; its log:")
                    echo((work / "monitor.log").read_text(errors="replace")[-3000:])
                    # a Kafka fault's own code (docs/operations.md), else 1
                    return monitor.returncode if monitor.returncode in EXIT_CODES.values() else 1
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_EVERY_SECONDS
                    text = _fetch(f"http://127.0.0.1:{metrics_port}/metrics")
                    if text is not None:
                        echo(status_line(text))
                msg = consumer.poll(0.5)
                value = None if msg is None or msg.error() else msg.value()
                if value is None:
                    continue
                if msg is not None and msg.topic() == stats_topic:  # kept for the report, not printed
                    stats_file.write(value + b"\n")
                    continue
                alerts_file.write(value + b"\n")
                alerts_file.flush()
                try:
                    echo(format_alert(decode_alert(value)))
                except ValueError as exc:
                    echo(f"(an undecodable alert event: {exc})")
        except KeyboardInterrupt:
            pass
        last_metrics = _fetch(f"http://127.0.0.1:{metrics_port}/metrics")  # the counts, before it stops
        echo("stopping the producer, the monitor and the broker ...")
    try:
        _write_report(work, config_path, last_metrics)
    except (OSError, StreamMonitorError) as exc:  # the demo ran; a report it cannot write is no failure
        echo(f"could not write the report: {exc}")
    for line in describe_workdir(work):
        echo(line)
    echo("demo stopped")
    return 0
