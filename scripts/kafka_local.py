#!/usr/bin/env python3
"""A real local Kafka broker: ``kafka_local.py fetch | start [--port 9092] [--foreground] | stop``.

A thin wrapper over ``python -m stream_monitor.devtools.kafka`` that also works before ``pip install -e .``,
which is how scripts/ci_setup.sh prefetches the jars.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream_monitor.devtools.kafka.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
