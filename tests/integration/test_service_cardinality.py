"""Cardinality on a real broker: 10,000 distinct model ids injected into the features topic leave ``/metrics``
bounded. Each unknown id is dead-lettered (``unknown_model``), and none becomes a label value. The configured
cap on label sets per family holds for the series the configured model makes, with the excess counted, and a
scrape stays fast."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_INJECTED = 10_000
CAP = 20  # label sets per family: below what the model's own signals need, so the cap is exercised
SCRAPES = 20
SCRAPE_WITHIN_S = 0.2


def _series(text: str) -> list[tuple[str, str]]:
    """(family, labels) of every sample line; histogram bucket/sum/count lines count under their family."""
    out = []
    for line in text.splitlines():
        m = re.match(r"(stream_monitor_[a-z_]+?)(?:_bucket|_sum|_count)?(\{[^}]*\})? \S+$", line)
        if m and "le=" not in (m.group(2) or ""):
            out.append((m.group(1), m.group(2) or ""))
    return out


def test_ten_thousand_injected_model_ids_leave_metrics_bounded(tmp_path: Path, kafka_bootstrap: str) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, max_label_cardinality=CAP)
    try:
        d.create_topics()
        worker = d.start_worker()
        ss.wait_for(lambda: "assigned" in worker.log(), 60, "the worker assigned")
        real = ss.live_events(6_000, drifting=True)
        d.produce_events(real)
        injected = [
            {**e, "model_id": f"injected-{i:05d}", "event_id": f"injected-{i}"}
            for i, e in enumerate(ss.live_events(N_INJECTED, drifting=False, seed=3))
        ]
        d.produce_events(injected)
        ss.wait_for(
            lambda: worker.metric("stream_monitor_dead_letters_total", reason="unknown_model") >= N_INJECTED,
            120,
            "every injected id dead-lettered as unknown_model",
        )
        ss.wait_for(
            lambda: worker.metric("stream_monitor_windows_tested_total", model=ss.MODEL) >= 3,
            120,
            "the real model's windows tested",
        )
        assert worker.metric("stream_monitor_dead_letters_total", reason="unknown_model") == N_INJECTED

        url = worker.metrics_url() + "/metrics"
        took = []
        for _ in range(SCRAPES):
            started = time.monotonic()
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            took.append(time.monotonic() - started)
        series = _series(text)
        per_family = Counter(family for family, _ in series)
        print(
            f"{len(series)} series in {len(per_family)} families; scrape max {max(took) * 1e3:.1f} ms, "
            f"median {sorted(took)[len(took) // 2] * 1e3:.1f} ms"
        )
        assert not [labels for _, labels in series if "injected-" in labels], "an injected id became a label"
        # the cap bounds the label sets of a family (plus the one __overflow__ set the excess folds into)
        assert max(per_family.values()) <= CAP + 1, per_family.most_common(3)
        assert worker.metric("stream_monitor_label_overflow_total") > 0, "the cap was never reached"
        assert max(took) < SCRAPE_WITHIN_S, took
        # the dead-letter topic holds every injected message with its reason
        reasons = Counter(
            dict(m.headers() or []).get("reason", b"").decode() for m in d.read("dlq", timeout=30)
        )
        assert reasons["unknown_model"] == N_INJECTED
        code, _ = worker.terminate()
        assert code == 0
    finally:
        d.close()
