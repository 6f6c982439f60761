"""``python -m stream_monitor.devtools.kafka fetch|start|stop``: a local Kafka broker from the command line.

``start`` prints only the bootstrap address on stdout, so a shell can capture it::

    export KAFKA_BOOTSTRAP_SERVERS=$(python scripts/kafka_local.py start)
    python -m pytest -q          # the tests then use that broker instead of starting their own
    python scripts/kafka_local.py stop
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from stream_monitor.devtools.kafka.broker import LocalBroker
from stream_monitor.devtools.kafka.errors import DevKafkaError
from stream_monitor.devtools.kafka.jars import ensure_jars
from stream_monitor.devtools.kafka.locations import DEFAULT_KAFKA_VERSION, cache_dir
from stream_monitor.devtools.kafka.processes import running_brokers, stop_broker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka_local", description="A real single-node Kafka broker on 127.0.0.1 for development."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch the broker jars with Maven (once) and print their directory")
    fetch.add_argument("--version", default=DEFAULT_KAFKA_VERSION, help="Kafka version (%(default)s)")
    start = sub.add_parser("start", help="start a broker and print its bootstrap address")
    start.add_argument("--port", type=int, default=9092, help="listener port, 0: any free one (%(default)s)")
    start.add_argument("--data-dir", help="keep topics here across restarts (default: temporary, removed)")
    start.add_argument("--foreground", action="store_true", help="run until Ctrl-C, not in the background")
    start.add_argument("--version", default=DEFAULT_KAFKA_VERSION, help="Kafka version (%(default)s)")
    stop = sub.add_parser("stop", help="stop brokers started from this cache dir (by their PID files)")
    stop.add_argument("--port", type=int, help="only the broker on this port (default: all)")
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _start(args: argparse.Namespace) -> int:
    broker = LocalBroker(version=args.version, die_with_parent=args.foreground)
    broker.start(port=args.port, data_dir=args.data_dir)
    print(broker.bootstrap_servers, flush=True)
    print(f"Kafka {args.version} running, pid {broker.pid}, log {broker.log_file}", file=sys.stderr)
    if not args.foreground:
        print(f"stop it with: python scripts/kafka_local.py stop --port {broker.port}", file=sys.stderr)
        return 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = broker.wait()
        print(f"the broker exited with code {code}; see {broker.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def _stop(args: argparse.Namespace) -> int:
    ports = [args.port] if args.port is not None else list(running_brokers())
    for port in ports:
        if stop_broker(port):
            print(f"stopped the broker on 127.0.0.1:{port}", file=sys.stderr)
        else:
            print(f"no broker from {cache_dir()} was running on port {port}", file=sys.stderr)
    if not ports:
        print(f"no broker from {cache_dir()} is running", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (1 with a one-paragraph reason on failure)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_jars(args.version))
            return 0
        if args.command == "start":
            return _start(args)
        return _stop(args)
    except DevKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
