"""Exactness under failures on a real broker, with worker subprocesses in one consumer group.

* kill -9 of a worker, twice, while 20k events stream over 3 partitions to 2 workers;
* a second worker joining and then leaving mid-stream.

Afterwards the model's stage-2 state (read back from the state topic) equals a one-process recomputation of
the same events by the replay engine: the same windows tested, the same open window to the last count, the
same alert episodes; and the alerts topic holds each alert id + status once, exactly the engine's alerts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 20_000
N_PARTITIONS = 3
CHUNK = 500
CHUNK_EVERY_S = 0.3  # about 1,700 events/s: the stream lasts ~12 s, long enough to kill workers mid-way


# Native only: the Faust runtime keeps stage 2's open window and pending slices in memory while Faust commits
# the partials they came from on its timer, so a kill -9 of stage 2's owner loses them (measured on faust:
# windows holding 15,617 of the oracle's 19,166 tested events, a warning alert missing; stage 1 lost nothing).
# docs/operations.md's guarantees table says so.
@pytest.mark.parametrize("runtime", ss.runtimes("exact"))
def test_kill9_twice_with_two_workers_keeps_state_exact(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, extra_topics=("window_stats",), runtime=runtime)
    try:
        d.create_topics()
        first, second = d.start_worker(), d.start_worker()
        ss.wait_for(
            lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both workers assigned"
        )
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS, CHUNK, CHUNK_EVERY_S)
        feeder.start()
        ss.when_produced(feeder, 0.3, first.kill9)
        d.start_worker()
        ss.when_produced(feeder, 0.65, second.kill9)
        d.start_worker()
        ss.finish_and_compare(d, feeder, events, faults=2)
        replacements = d.workers[2:]
        if ss.RUNTIMES[runtime] == "exact":
            assert any("restored" in w.log() for w in replacements), "the replacements resumed from snapshots"
        for w in replacements:
            code, seconds = w.terminate()
            assert code == 0
            assert seconds < 10
    finally:
        d.close()


# Native only: when a rebalance takes an input partition from a Faust worker, Faust commits the offsets it
# acked, which include the events in the partition's open slices, and the worker drops that folder unsent
# (measured on faust: 77 events of 3 slices of one partition lost in a join and a leave; docs/operations.md).
@pytest.mark.parametrize("runtime", ss.runtimes("exact"))
def test_worker_joining_and_leaving_mid_stream_keeps_state_exact(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, extra_topics=("window_stats",), runtime=runtime)
    try:
        d.create_topics()
        first = d.start_worker()
        ss.wait_for(lambda: "assigned" in first.log(), 60, "the first worker assigned")
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS, CHUNK, CHUNK_EVERY_S)
        feeder.start()
        joined: list[ss.WorkerProcess] = []
        ss.when_produced(feeder, 0.25, lambda: joined.append(d.start_worker()))
        ss.wait_for(lambda: "assigned" in joined[0].log(), 60, "the second worker assigned")

        def leave() -> None:
            code, seconds = joined[0].terminate()
            assert code == 0
            assert seconds < 10

        ss.when_produced(feeder, 0.7, leave)
        ss.finish_and_compare(d, feeder, events, faults=2)
        if ss.RUNTIMES[runtime] == "exact":
            assert "handed off" in first.log() or "restored" in first.log()
        code, _ = first.terminate()
        assert code == 0
    finally:
        d.close()


SESSION_TIMEOUT_S = 6.0  # ss.write_config's session.timeout.ms
_ASSIGNED = re.compile(r"^(\S+ \S+) INFO \S+ \[\d+\] assigned \S+\[\d+\]", re.MULTILINE)


def _assigned_after(worker: ss.WorkerProcess, after: float) -> float | None:
    """Wall-clock time of the first partition ``worker`` logged as assigned after ``after``, if any."""
    for stamp in _ASSIGNED.findall(worker.log()):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        if at >= after:
            return at
    return None


# Native only, for the cause above test_worker_joining_and_leaving_mid_stream_keeps_state_exact (its rebalances
# also log aiokafka's lines, not the worker's "assigned" lines this test times).
@pytest.mark.parametrize("runtime", ss.runtimes("exact"))
def test_rebalance_churn_join_leave_rejoin_keeps_state_exact(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    """A worker joins at 25%, leaves by SIGTERM at 50% and rejoins at 75% of the stream; each rebalance ends
    (the partitions it moves are assigned) within twice the session timeout."""
    d = ss.Deployment(tmp_path, kafka_bootstrap, extra_topics=("window_stats",), runtime=runtime)
    try:
        d.create_topics()
        first = d.start_worker()
        ss.wait_for(lambda: "assigned" in first.log(), 60, "the first worker assigned")
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS, CHUNK, CHUNK_EVERY_S)
        feeder.start()
        took: dict[str, float] = {}

        def rebalance(name: str, act: Callable[[], ss.WorkerProcess]) -> None:
            started = time.time()
            receiver = act()  # the worker that takes partitions in this rebalance
            at = ss.wait_for(lambda: _assigned_after(receiver, started), 4 * SESSION_TIMEOUT_S, name)
            took[name] = at - started

        def leave() -> ss.WorkerProcess:
            code, seconds = d.workers[1].terminate()
            assert (code, seconds < 10) == (0, True)
            return first

        ss.when_produced(feeder, 0.25, lambda: rebalance("join", d.start_worker))
        ss.when_produced(feeder, 0.5, lambda: rebalance("leave", leave))
        ss.when_produced(feeder, 0.75, lambda: rebalance("rejoin", d.start_worker))
        emitted = ss.finish_and_compare(d, feeder, events, faults=3)
        print("rebalances (s): " + ", ".join(f"{k} {v:.1f}" for k, v in took.items()))
        if ss.RUNTIMES[runtime] == "exact":
            assert len({(a.alert_id, a.status.value, a.severity.value) for a in emitted}) == len(emitted)
        assert all(v < 2 * SESSION_TIMEOUT_S for v in took.values()), took
        for w in (first, d.workers[2]):
            code, _ = w.terminate()
            assert code == 0
    finally:
        d.close()
