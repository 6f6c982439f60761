"""Issue 13's event-time hazards: the service model's stream with the issue's mix of late, skewed and
repeated events, and the windows a batch oracle in plain Python says the admitted events make; the concept
model's labels with theirs (repeats and corrections, skewed ahead, older than the join's TTL), and the join a
plain-Python oracle says the admitted labels make. Shared by the unit oracle tests (through the engine) and
the service tests on the real broker."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_monitor.config.loading import parse_config
from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.clock import ManualClock
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_spec import Drift
from tests.service_support import MODEL, RATE, WINDOW, concept_model_config, model_config, profile, spec

HAZARD_MIX = {"out_of_order": 0.05, "late": 0.01, "duplicate": 0.02, "future": 0.005, "month_old": 0.005}
MAX_FUTURE_S = 300.0


def hazard_events(n: int, start: float, seed: int = 2) -> list[dict[str, Any]]:
    """The service model's stream from ``start`` (near the wall clock, for the future bound), num_00
    drifting from 30% on."""
    drift = Drift("mean_shift", "num_00", start_ts=start + 0.3 * n / RATE, magnitude=1.5)
    return generate(spec(seed, start), n, [drift]).features


def hazard_config(**service: Any) -> MonitorConfig:
    """The service model, with the future bound on."""
    return parse_config(
        {"models": {MODEL: model_config(max_future_seconds=MAX_FUTURE_S)}, "service": service}
    )


@dataclass
class Hazards:
    """A stream with the issue's event-time faults: ``messages`` in arrival order; ``admitted`` the events
    the windows must hold (deduplicated, within the lateness bound, not skewed), ``reasons`` the dead letters
    due, by reason, and ``duplicates`` the repeats to suppress."""

    messages: list[dict[str, Any]]
    admitted: list[dict[str, Any]]
    reasons: Counter[str]
    duplicates: int


def event_time_hazards(events: list[dict[str, Any]], seed: int = 13, warmup_s: float = 10.0) -> Hazards:
    """The issue's mix over ``events`` (in event-time order, ``RATE`` a second): 5% moved back within the
    lateness bound (at most 0.45 s of the 1 s, so less than the bound less a slice), 1% back 5 to 30 s
    (later than it), 0.5% an hour ahead, 0.5% a month back, 2% of the regular events sent again 1 to 20
    events later (within their open slice). The first ``warmup_s`` of event time is clean, so every late
    event has a watermark to be late against on any partition."""
    rng = np.random.default_rng(seed)
    start = events[0]["ts"]
    mix = HAZARD_MIX
    edges = np.cumsum([mix["out_of_order"], mix["late"], mix["future"], mix["month_old"]])
    repeat = mix["duplicate"] / (1 - edges[-1])  # of the regular events
    messages: list[dict[str, Any]] = []
    admitted: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    due: list[tuple[int, dict[str, Any]]] = []  # (sent after this many messages, a copy)
    for e in events:
        u = rng.random()
        kind = int(np.searchsorted(edges, u, side="right")) if e["ts"] - start >= warmup_s else len(edges)
        if kind == 0:
            e = {**e, "ts": e["ts"] - float(rng.uniform(0.01, 0.45))}
            admitted.append(e)
        elif kind == 1:
            e = {**e, "ts": e["ts"] - float(rng.uniform(5.0, 30.0))}
            reasons["late_event"] += 1
        elif kind == 2:
            e = {**e, "ts": e["ts"] + 3600.0}
            reasons["future_timestamp"] += 1
        elif kind == 3:
            e = {**e, "ts": e["ts"] - 30 * 86400.0}
            reasons["late_event"] += 1
        else:
            admitted.append(e)
            if rng.random() < repeat:
                due.append((len(messages) + int(rng.integers(1, 21)), dict(e)))
        messages.append(e)
        while due and due[0][0] <= len(messages):
            messages.append(due.pop(0)[1])
    messages.extend(copy for _, copy in due)
    return Hazards(messages, admitted, reasons, len(messages) - len(events))


@dataclass(frozen=True)
class OracleWindow:
    start_ts: float
    end_ts: float
    events: int
    counts: dict[str, list[int]]  # numeric feature -> events per reference bin


def hazard_layout() -> dict[str, Any]:
    """The reference bin edges of the service model's numeric features, by name."""
    models = build_models_for(hazard_config())
    layout = models.layouts[MODEL].sketch
    return {s.name: e for s, e in zip(layout.numeric, layout.edges, strict=True)}


def label_hazard_config(**service: Any) -> MonitorConfig:
    """The concept-drift service model (labels ~2 s late, a 60 s TTL), with the future bound on."""
    return parse_config(
        {"models": {MODEL: concept_model_config(max_future_seconds=MAX_FUTURE_S)}, "service": service}
    )


def build_models_for(cfg: MonitorConfig) -> Any:
    from stream_monitor.pipeline.assembly import build_models

    return build_models(cfg, profile().models, ManualClock(0.0))


def oracle_windows(admitted: list[dict[str, Any]], edges: dict[str, Any]) -> list[OracleWindow]:
    """The windows of ``admitted`` in plain Python: slices of ``WINDOW['slice_seconds']``, runs of whole
    slices closed at ``max_events`` events (or ``max_seconds``), and per window each numeric feature's count
    per reference bin (a value is in the bin of the number of edges at or below it)."""
    width = WINDOW["slice_seconds"]
    max_slices = math.floor(WINDOW["max_seconds"] / width + 1e-9)
    by_slice: dict[int, list[dict[str, Any]]] = {}
    for e in admitted:
        by_slice.setdefault(math.floor(e["ts"] / width), []).append(e)
    windows: list[OracleWindow] = []
    members: list[dict[str, Any]] = []
    first = end = 0

    def close() -> None:
        counts = {}
        for name, cuts in edges.items():
            values = [e["features"][name] for e in members]
            good = np.array([v for v in values if isinstance(v, float) and math.isfinite(v)])
            counts[name] = np.bincount(
                np.searchsorted(cuts, good, side="right"), minlength=len(cuts) + 1
            ).tolist()
        windows.append(OracleWindow(first * width, end * width, len(members), counts))
        members.clear()

    for s in sorted(by_slice):
        if members and s + 1 - first > max_slices:
            close()
        if not members:
            first = s
        members.extend(by_slice[s])
        end = s + 1
        if len(members) >= WINDOW["max_events"]:
            close()
    if members:
        close()
    return windows


# ---- labels: repeated (some corrected), skewed ahead, older than the join's TTL ------------------------------
LABEL_MIX = {"duplicate": 0.02, "future": 0.005, "month_old": 0.005, "older_than_ttl": 0.01}
CORRECTED = 0.3  # of the repeats, the share that carry the other class (a correction: the first label wins)


@dataclass
class LabelHazards:
    """Labels with the hazards: ``messages`` in arrival order, ``sent_at`` the event time each is sent at
    (for interleaving with the other streams), ``admitted`` the label each event id is judged with (its first
    copy), ``reasons`` the dead letters due, ``duplicates`` the repeats the join suppresses (``corrections``
    of them with another value)."""

    messages: list[dict[str, Any]]
    sent_at: list[float]
    admitted: list[dict[str, Any]]
    reasons: Counter[str]
    duplicates: int
    corrections: int


def label_hazards(
    labels: list[dict[str, Any]], ttl: float, seed: int = 17, warmup_s: float = 10.0
) -> LabelHazards:
    """Over ``labels`` (sent in ``ts`` order, a binary label): 0.5% stamped an hour ahead, 0.5% a month back,
    1% stamped 5 s to one TTL further back than the TTL (older than the newest label by more than the TTL),
    and 2% of the regular labels sent again 1 to 20 labels later, ``CORRECTED`` of those with the other
    class. The first ``warmup_s`` of label time is clean, so every label partition has a newest label."""
    rng = np.random.default_rng(seed)
    ordered = sorted(labels, key=lambda e: e["ts"])
    start = ordered[0]["ts"]
    mix = LABEL_MIX
    edges = np.cumsum([mix["future"], mix["month_old"], mix["older_than_ttl"]])
    repeat = mix["duplicate"] / (1 - edges[-1])
    out = LabelHazards([], [], [], Counter(), 0, 0)
    due: list[tuple[int, dict[str, Any]]] = []
    for e in ordered:
        sent = e["ts"]
        u = rng.random()
        kind = int(np.searchsorted(edges, u, side="right")) if e["ts"] - start >= warmup_s else len(edges)
        if kind == 0:
            e = {**e, "ts": e["ts"] + 3600.0}
            out.reasons["future_timestamp"] += 1
        elif kind == 1:
            e = {**e, "ts": e["ts"] - 30 * 86400.0}
            out.reasons["late_event"] += 1
        elif kind == 2:
            e = {**e, "ts": e["ts"] - ttl - float(rng.uniform(5.0, ttl))}
            out.reasons["late_event"] += 1
        else:
            out.admitted.append(e)
            if rng.random() < repeat:
                copy = dict(e)
                if rng.random() < CORRECTED:
                    copy["label"] = 1 - int(e["label"])
                    out.corrections += 1
                due.append((len(out.messages) + int(rng.integers(1, 21)), copy))
        out.messages.append(e)
        out.sent_at.append(sent)
        while due and due[0][0] <= len(out.messages):
            out.messages.append(due.pop(0)[1])
            out.sent_at.append(sent)
    for _, copy in due:
        out.messages.append(copy)
        out.sent_at.append(out.sent_at[-1])
    out.duplicates = len(out.messages) - len(labels)
    return out


@dataclass(frozen=True)
class OracleJoin:
    """What the join of the admitted labels to their predictions must hold: per label-health bucket
    (``floor(prediction ts / bucket_seconds)``) the labelled count and the confusion ``[label][predicted]``,
    and the totals."""

    buckets: dict[int, tuple[int, list[list[int]]]]
    joined: int
    stale: int
    errors: int


def oracle_join(
    predictions: list[dict[str, Any]], admitted: list[dict[str, Any]], bucket_seconds: float, sla: float
) -> OracleJoin:
    """The admitted labels joined to their predictions in plain Python (binary 0/1 classes): a pair whose label
    came later than ``sla`` after its prediction is stale, not joined."""
    by_id = {p["event_id"]: p for p in predictions}
    buckets: dict[int, tuple[int, list[list[int]]]] = {}
    joined = stale = errors = 0
    for label in admitted:
        p = by_id[label["event_id"]]
        if label["ts"] - p["ts"] > sla:
            stale += 1
            continue
        k = math.floor(p["ts"] / bucket_seconds)
        count, confusion = buckets.get(k, (0, [[0, 0], [0, 0]]))
        confusion[int(label["label"])][int(p["prediction"])] += 1
        buckets[k] = (count + 1, confusion)
        joined += 1
        errors += int(label["label"]) != int(p["prediction"])
    return OracleJoin(buckets, joined, stale, errors)


def arrivals(
    streams: dict[str, list[dict[str, Any]]], labels: LabelHazards
) -> list[tuple[str, dict[str, Any]]]:
    """Features and predictions (by time) and the hazardous labels (at their ``sent_at``) in one arrival
    order: by the time each is sent, then features, predictions, labels."""
    order = {"features": 0, "predictions": 1, "labels": 2}
    sent = [
        *(
            (e["ts"], order[k], i, k, e)
            for k in ("features", "predictions")
            for i, e in enumerate(streams[k])
        ),
        *(
            (t, 2, i, "labels", e)
            for i, (t, e) in enumerate(zip(labels.sent_at, labels.messages, strict=True))
        ),
    ]
    return [(k, e) for *_, k, e in sorted(sent, key=lambda s: s[:3])]


def assert_join_equals_oracle(perf: Any, oracle: OracleJoin, lh: LabelHazards) -> None:
    """A performance monitor's join, buckets and error stream hold what the oracle says."""
    s = perf.joiner.stats()
    assert (s.joined, s.stale_labels, s.duplicate_labels) == (oracle.joined, oracle.stale, lh.duplicates)
    assert s.labels == len(lh.admitted) + lh.duplicates
    assert (s.labels_after_eviction, s.early_labels) == (0, 0)
    got = {
        k: (b.sketch.count, b.sketch.to_dict()["confusion"])
        for k, b in perf.buckets.items()
        if b.sketch.count
    }
    assert got == oracle.buckets
    assert perf.error_stream is not None
    assert perf.error_stream.snapshot()["since"] == [oracle.joined, oracle.errors]  # no alarm reset it
