"""Soak run of the Kafka service: prints ONE JSON line of figures.

Two workers take a stream paced at ``--rate`` events/s (wall clock) for ``--minutes``; one is killed with
SIGKILL half way and replaced. Drift episodes open and resolve every few segments. The figures (from
``tests/soak_run.py``, which the nightly test runs too): each worker's RSS drift after its warm-up, the thread
count after warm-up (min, max), state keys against the partitions they may cover, events lost or counted twice
per tested window against a one-process replay, and p50 / p99 event-to-alert latency of the firing alerts. The
final stage-2 state and the alerts topic are checked against the replay engine (an assertion fails the run);
``failures`` lists the bounds of issue 13 the figures miss (exit 1 if any).

The broker is ``$KAFKA_BOOTSTRAP_SERVERS``, else one started here (``stream_monitor.devtools.kafka``).

Usage: python scripts/soak.py [--minutes 30] [--rate 500] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.soak_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--work", type=Path, help="keep the workers' logs here (default: a temporary dir)")
    args = parser.parse_args()

    from stream_monitor.devtools.kafka import kafka_bootstrap
    from tests.soak_run import SoakPlan, run_soak

    seconds = args.minutes * 60
    plan = SoakPlan(seconds=seconds, rate=args.rate, segment_seconds=30.0 if seconds >= 600 else 15.0)
    load_before = os.getloadavg()
    with kafka_bootstrap() as bootstrap:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            result = run_soak(work, bootstrap, plan)
    out = {
        "benchmark": "soak",
        **result.figures,
        "wall_s": round(time.monotonic() - started, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "failures": result.failures,
    }
    print(json.dumps(out))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
