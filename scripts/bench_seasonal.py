"""Seasonality, end to end on a seeded cyclic stream: prints ONE JSON line of figures.

The stream (``stream_monitor/devtools/synthetic_cycles.py``): ``x`` a sine of ``--amplitude`` over noise of
sd 1 with a ``--period`` cycle, ``w`` the same cycle at amplitude 1, ``y`` noise, at ``--rate`` events/s. The
reference covers ``--reference-cycles`` whole cycles; ``reference build`` (in process: ``ReferenceBuilder``)
finds the cycles and ``config init`` (``render_config``) writes the config. Three replays through the
in-process engine:

* ``on``: ``--live-cycles`` more cycles of the same process with the config as written (target: no alert);
* ``off``: the same with every seasonality removed (the whole-reference comparison of before);
* ``wider``: ``x``'s amplitude doubled, config as written (target: ``covariate_drift`` on ``x`` alone).

For each: windows tested, the decisions of ``x``'s PSI test, its median and largest PSI, the alerts (kind,
signal, severity, status), feature events/s of the replay (wall clock, after the reference is built and a
short warm-up replay; the calibrations of a fresh engine are included), and the phase mixtures calibrated
(the cache of expected profiles: a mixture seen again is not recalibrated).
``cycle_search_s`` is the time the search for cycles took within ``reference_build_s``.

Usage: python scripts/bench_seasonal.py [--period 3600] [--rate 5] [--reference-cycles 6] [--live-cycles 3]
                                         [--amplitude 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import orjson
import yaml

from stream_monitor.config.loading import parse_config
from stream_monitor.config.template import render_config
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.devtools.synthetic_cycles import cyclic_events
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.profiles import ReferenceProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder
from stream_monitor.stats.seasonality import find_periods

MODEL = "cyclic"
START = 1_763_766_000.0


def _replay(
    config: dict[str, Any], reference: ReferenceProfile, events: list[dict[str, Any]]
) -> dict[str, Any]:
    engine = Engine(parse_config(config), reference.models, ManualClock(0.0))
    engine.record_stats(True)
    began = time.perf_counter()
    alerts = []
    for i in range(0, len(events), 2000):
        alerts += engine.process_events(Stream.FEATURES, events[i : i + 2000]).alerts
    alerts += engine.flush()
    wall = time.perf_counter() - began
    stats = [s for s in engine.take_stats() if s.signal == "x" and s.detector == "psi"]
    psi = [s.statistic for s in stats]
    pipeline = engine.pipelines[MODEL]
    return {
        "windows": pipeline.monitor.windows_tested,
        "x_psi_decisions": dict(Counter(s.decision for s in stats)),
        "x_psi_median": round(statistics.median(psi), 4),
        "x_psi_max": round(max(psi), 4),
        "alerts": sorted(
            {(a.kind.value, a.signal, a.severity.value, a.status.value) for a in alerts},
        ),
        "events_per_s": round(len(events) / wall),
        "mixtures_calibrated": pipeline.monitor.seasonal.mixtures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=float, default=3600.0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--reference-cycles", type=int, default=6)
    parser.add_argument("--live-cycles", type=int, default=3)
    parser.add_argument("--amplitude", type=float, default=2.0)
    args = parser.parse_args()
    p, rate, amp = args.period, args.rate, args.amplitude

    print("building the reference", file=sys.stderr)
    ref_events = cyclic_events(1, START, args.reference_cycles * p, p, rate, amp, MODEL)
    began = time.perf_counter()
    builder = ReferenceBuilder(seed=0)
    builder.add_features(ref_events)
    reference = builder.build()
    build_s = time.perf_counter() - began
    ts = np.array([e["ts"] for e in ref_events])
    began = time.perf_counter()
    find_periods(ts)
    for name in ("x", "y"):
        find_periods(ts, np.array([e["features"][name] for e in ref_events]), name)
    search_s = time.perf_counter() - began
    season = reference.models[MODEL].seasonality
    assert season is not None

    config = yaml.safe_load(render_config(reference, "reference.json"))
    live_start = START + args.reference_cycles * p
    live = cyclic_events(2, live_start, args.live_cycles * p, p, rate, amp, MODEL)
    wider = cyclic_events(3, live_start, args.live_cycles * p, p, rate, 2 * amp, MODEL)
    figures: dict[str, Any] = {
        "period_s": p,
        "rate": rate,
        "reference_events": len(ref_events),
        "reference_build_s": round(build_s, 2),
        "cycle_search_s": round(search_s, 2),
        "found": [f.to_dict() for f in season.found],
        "window_max_seconds": config["models"][MODEL]["window"]["max_seconds"],
        "live_events": len(live),
    }
    _replay(config, reference, live[:4000])  # warm-up (imports, decoder structs): not in the figures
    print("replay: seasonality on", file=sys.stderr)
    figures["on"] = _replay(config, reference, live)
    off = yaml.safe_load(render_config(reference, "reference.json"))
    for feature in off["models"][MODEL]["features"].values():
        feature.pop("seasonality", None)
    print("replay: seasonality off", file=sys.stderr)
    figures["off"] = _replay(off, reference, live)
    print("replay: amplitude doubled", file=sys.stderr)
    figures["wider"] = _replay(config, reference, wider)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
