"""Concept drift at label speed (marked slow; CI runs them).

Requirement: seeded concept switches (abrupt, gradual, subtle) at 200 events/s, with lognormal label delays and
8% missing labels, raise a ``concept_drift`` alert within 600 s of event time of the switch, on the
``performance`` signal, with the detector and the labelled count in ``details``; the same stream without a
switch raises none; a stream whose error falls raises none.

* Streams of 150k events at 200 events/s (750 s of event time); the switch 60k events in (about 300 s), about
  100 s after a boundary of the default 900-s performance buckets.
* The model predicts the pre-switch concept's rule, with a score calibrated to the reference's 10% label
  noise; the reference is 20k events of that concept (another seed). Config: what ``config init`` writes.
* Labels arrive after a lognormal delay (median 120 s, sigma 0.8, clipped to [30, 600] s), 8% never; they are
  fed in arrival order, merged with features and predictions by event time in blocks, as test_concept.py's
  ``_run`` feeds them.
* abrupt: SEA variant 0 -> its rule reversed (error about 10% -> 90%); gradual: Agrawal function 1 -> 3 with
  the share of function-3 labels growing linearly over 300 s (10% -> 27%); subtle: SEA variant 0 -> 1, the
  threshold moves 8 -> 9 (10% -> 17%). Each stream's error rates are checked before the engine sees it.
* "Within 600 s" holds for the alert's ``event_ts`` and for when it is raised: before the engine has been
  handed any event more than 600 s after the switch.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray
from river.datasets import synth

from stream_monitor.config.loading import parse_config
from stream_monitor.config.template import render_config
from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.profiles import ModelProfile, ReferenceProfile
from tests.statistical.test_concept import SEA_THRESHOLDS, START, _profile

pytestmark = pytest.mark.slow

RATE = 200.0  # events per second of event time
# START (test_concept's) is a multiple of 900 s; the live streams begin 200 s before the next multiple, so the
# switch comes about 100 s after a boundary of the default 900-s performance buckets: a change that is only
# judged when its bucket of prediction time closes cannot be reported within the bound.
LIVE_START = START + 900.0 - 200.0
N_EVENTS = 150_000
SWITCH_AT = 60_000  # the first event of the new concept, about 300 s in
REFERENCE_EVENTS = 20_000
BOUND_SECONDS = 600.0  # the alert must come within this much event time of the switch
NOISE = 0.10  # label noise of the reference (and of the live stream unless a switch changes it)
LABEL_DELAY_MEDIAN, LABEL_DELAY_SIGMA, LABEL_DELAY_RANGE = 120.0, 0.8, (30.0, 600.0)
LABELS_LOST = 0.08


@dataclass(frozen=True)
class Switch:
    """What happens to the labels at the switch; the model keeps predicting concept ``before``.

    ``model``: ``sea`` (``before``/``after`` are SEA variants) or ``agrawal`` (classification functions).
    ``reverse``: the post-switch labels are the ``after`` concept's reversed. ``ramp_seconds``: the share of
    post-switch labels grows linearly from 0 to 1 over this much event time. ``noise_after``: label noise
    from the switch on. ``error_after``: the model's intended error share once the switch is complete."""

    model: str
    before: int
    after: int
    error_after: tuple[float, float]
    reverse: bool = False
    ramp_seconds: float = 0.0
    noise_after: float = NOISE


SWITCHES = {
    "abrupt": Switch("sea", 0, 0, reverse=True, error_after=(0.85, 0.95)),
    "gradual": Switch("agrawal", 1, 3, ramp_seconds=300.0, error_after=(0.23, 0.29)),
    "subtle": Switch("sea", 0, 1, error_after=(0.15, 0.19)),
}
SEEDS = {"abrupt": 21, "gradual": 22, "subtle": 23, "falls": 24}
REFERENCE_SEEDS = {"sea": 11, "agrawal": 12}


@dataclass(frozen=True)
class Live:
    """A model's three streams (engine-ready events) and the event time of the switch (None: none)."""

    model: str
    streams: dict[str, list[dict[str, Any]]]
    switch_ts: float | None


def _river(switch: Switch, concept: int, seed: int) -> Any:
    """River's generator of ``concept`` (an SEA variant or an Agrawal classification function), noise-free."""
    if switch.model == "sea":
        return synth.SEA(variant=concept, seed=seed)
    return synth.Agrawal(classification_function=concept, seed=seed)


def _agrawal_features(n: int, seed: int) -> list[dict[str, Any]]:
    """The feature vectors of River's ``synth.Agrawal(seed=seed)`` (no class balancing, no perturbation),
    drawn the same way from the same ``random.Random`` but without its ``eval`` per value (about 8 s per 150k
    rows there); :func:`_concept_rows` checks them against River's generator."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        salary = 20000 + 130000 * rng.random()
        commission = 0 if salary >= 75000 else 10000 + 75000 * rng.random()
        age = rng.randint(20, 80)
        elevel = rng.randint(0, 4)
        car = rng.randint(1, 20)
        zipcode = rng.randint(0, 8)
        hvalue = (8 - zipcode) * 100000 * (0.5 + rng.random())
        hyears = rng.randint(1, 30)
        loan = rng.random() * 500000
        rows.append(
            {
                "salary": salary,
                "commission": commission,
                "age": age,
                "elevel": elevel,
                "car": car,
                "zipcode": zipcode,
                "hvalue": hvalue,
                "hyears": hyears,
                "loan": loan,
            }
        )
    return rows


def _concept_rows(
    switch: Switch, n: int, seed: int
) -> tuple[list[dict[str, Any]], NDArray[np.int64], NDArray[np.int64]]:
    """``n`` feature vectors of River's SEA or Agrawal generator (seeded), with the noise-free labels of the
    concepts ``before`` and ``after`` on the very same vectors (``after`` reversed if ``switch.reverse``).

    Labels come from SEA's documented thresholds or River's own Agrawal classification functions; the first
    2000 rows are checked against River's generators of both concepts, which draw the same vectors."""
    if switch.model == "sea":
        xs = [x for x, _ in itertools.islice(_river(switch, switch.before, seed), n)]

        def labels(concept: int) -> list[int]:
            return [int(x[0] + x[1] > SEA_THRESHOLDS[concept]) for x in xs]
    else:
        xs = _agrawal_features(n, seed)
        rules = synth.Agrawal()._classification_functions

        def labels(concept: int) -> list[int]:
            return [int(rules[concept](**x)) for x in xs]

    y_before, y_after = np.array(labels(switch.before)), np.array(labels(switch.after))
    for concept, y in ((switch.before, y_before), (switch.after, y_after)):
        checked = list(itertools.islice(_river(switch, concept, seed), 2000))
        assert [x for x, _ in checked] == xs[:2000]
        assert [int(yy) for _, yy in checked] == y[:2000].tolist()
    prefix = "f" if switch.model == "sea" else ""  # SEA's features are 0, 1, 2: f0, f1, f2 as in test_concept
    features = [{f"{prefix}{k}": v for k, v in x.items()} for x in xs]
    return features, y_before, (1 - y_after) if switch.reverse else y_after


def _make_stream(
    switch: Switch, n: int, seed: int, start: float, switch_at: int | None, noise: float = NOISE
) -> Live:
    """Events at ``RATE`` from ``start`` (cumulative exponential gaps); the model predicts concept ``before``
    with a score calibrated to the reference's ``NOISE``; labels follow ``before`` (flipped with ``noise``)
    until event ``switch_at`` (None: throughout), then ``after`` (over ``ramp_seconds``; flipped with
    ``noise_after``). Each label arrives after a clipped lognormal delay, or never (``LABELS_LOST``). Seeded
    by ``seed``."""
    rng = np.random.default_rng(seed)
    features, predicted, after = _concept_rows(switch, n, seed)
    ts = start + np.cumsum(rng.exponential(1.0 / RATE, n))
    switch_ts = None if switch_at is None else float(ts[switch_at])
    if switch_ts is None:
        new_share = np.zeros(n)
    elif switch.ramp_seconds > 0:
        new_share = np.clip((ts - switch_ts) / switch.ramp_seconds, 0.0, 1.0)
    else:
        new_share = (ts >= switch_ts).astype(np.float64)
    truth = np.where(rng.random(n) < new_share, after, predicted)
    label_noise = np.where(new_share > 0, switch.noise_after, noise)
    label = np.where(rng.random(n) < label_noise, 1 - truth, truth)
    # The score is P(label = 1) as the model learnt it from the reference: right 1 - NOISE of the time.
    score = np.where(predicted == 1, 1.0 - NOISE, NOISE) + rng.uniform(-0.05, 0.05, n)
    low, high = LABEL_DELAY_RANGE
    delay = np.clip(rng.lognormal(math.log(LABEL_DELAY_MEDIAN), LABEL_DELAY_SIGMA, n), low, high)
    lost = rng.random(n) < LABELS_LOST
    model = switch.model
    streams: dict[str, list[dict[str, Any]]] = {"features": [], "predictions": [], "labels": []}
    for i in range(n):
        eid = f"{model}-{seed}-{i}"
        t = float(ts[i])
        streams["features"].append({"event_id": eid, "model_id": model, "ts": t, "features": features[i]})
        streams["predictions"].append(
            {
                "event_id": eid,
                "model_id": model,
                "ts": t + 0.01,
                "prediction": int(predicted[i]),
                "score": float(score[i]),
            }
        )
        if not lost[i]:
            streams["labels"].append(
                {"event_id": eid, "model_id": model, "ts": t + float(delay[i]), "label": int(label[i])}
            )
    streams["labels"].sort(key=lambda e: e["ts"])  # label-arrival order
    return Live(model, streams, switch_ts)


def _error_rate(live: Live, lo: float, hi: float) -> float:
    """The model's error share over the labelled events whose prediction time is in [lo, hi)."""
    predicted = {e["event_id"]: (e["ts"], e["prediction"]) for e in live.streams["predictions"]}
    wrong = [
        predicted[e["event_id"]][1] != e["label"]
        for e in live.streams["labels"]
        if lo <= predicted[e["event_id"]][0] < hi
    ]
    return float(np.mean(wrong))


@functools.cache
def _reference(model: str) -> ModelProfile:
    """The reference: 20k events of the pre-switch concept (a seed of its own), a day before the live streams."""
    switch = next(s for s in SWITCHES.values() if s.model == model)
    ref = _make_stream(switch, REFERENCE_EVENTS, REFERENCE_SEEDS[model], START - 86400, switch_at=None)
    return _profile(ref.streams, model)


@functools.cache
def _config(model: str) -> dict[str, Any]:
    """The model's block of the config ``stream-monitor config init`` writes for the reference."""
    text = render_config(ReferenceProfile(models={model: _reference(model)}), "unused")
    block: dict[str, Any] = yaml.safe_load(text)["models"][model]
    return block


def _run_timed(
    profile: ModelProfile, model: str, streams: dict[str, list[dict[str, Any]]], cfg: dict[str, Any]
) -> list[tuple[Alert, float]]:
    """test_concept.py's ``_run`` (the same config, merge by event time and blocks of 4000 merged events, one
    ``process_events`` call per stream), each alert paired with the event time the engine had been handed
    before the call that returned it: the largest ``ts`` of the events fed until then."""
    config = parse_config({"models": {model: {"reference": "unused", **cfg}}})
    engine = Engine(config, {model: profile}, ManualClock(0.0))
    merged = sorted(((e["ts"], k, e) for k, evs in streams.items() for e in evs), key=lambda t: t[0])
    out: list[tuple[Alert, float]] = []
    seen = -math.inf
    for i in range(0, len(merged), 4000):
        block = merged[i : i + 4000]
        for stream in ("features", "predictions", "labels"):
            events = [e for _, k, e in block if k == stream]
            if events:
                out += [(a, seen) for a in engine.process_events(Stream(stream), events).alerts]
                seen = max(seen, max(e["ts"] for e in events))
    return out + [(a, seen) for a in engine.flush()]


def _concept_alerts(live: Live) -> list[tuple[Alert, float]]:
    """Run the engine over the live streams: the firing concept-drift alerts (any signal), each with the event
    time the engine had seen when it raised it."""
    ran = _run_timed(_reference(live.model), live.model, live.streams, _config(live.model))
    return [(a, seen) for a, seen in ran if a.kind.value == "concept_drift" and a.status.value == "firing"]


def _describe(alerts: list[tuple[Alert, float]], since: float) -> list[tuple[Any, ...]]:
    """For assertion messages: signal, severity, detector, event_ts and the event time seen when raised (both
    in seconds after ``since``), labelled count."""
    return [
        (
            a.signal,
            a.severity.value,
            a.detector,
            round(a.event_ts - since, 1),
            round(seen - since, 1),
            a.details.get("labelled"),
        )
        for a, seen in alerts
    ]


@pytest.mark.parametrize("kind", list(SWITCHES))
def test_a_concept_switch_alerts_on_performance_within_600_s(kind: str) -> None:
    switch = SWITCHES[kind]
    live = _make_stream(switch, N_EVENTS, SEEDS[kind], LIVE_START, SWITCH_AT)
    assert live.switch_ts is not None
    switched = live.switch_ts + switch.ramp_seconds
    # The stream does what it says: the reference's error rate before, the intended one once switched.
    assert abs(_error_rate(live, LIVE_START, live.switch_ts) - NOISE) < 0.01
    low, high = switch.error_after
    assert low <= _error_rate(live, switched, math.inf) <= high

    concept = _concept_alerts(live)
    early = [(a, seen) for a, seen in concept if a.event_ts < live.switch_ts]  # estimated_performance too
    assert early == [], _describe(early, live.switch_ts)
    bound = live.switch_ts + BOUND_SECONDS
    # Within the bound by its event_ts, and raised before the engine was handed anything past the bound.
    hits = [(a, seen) for a, seen in concept if a.signal == "performance" and max(a.event_ts, seen) <= bound]
    assert hits, f"none within {BOUND_SECONDS:.0f} s: {_describe(concept, live.switch_ts)}"
    # One cause, one page: the episode stays open while the error stays up (no fire / resolve flapping).
    episodes = {a.alert_id for a, _ in concept if a.signal == "performance" and a.status.value == "firing"}
    assert len(episodes) == 1, _describe(concept, live.switch_ts)
    n_labels = len(live.streams["labels"])
    for a, _ in hits:
        assert a.detector, a
        labelled = a.details.get("labelled")
        assert isinstance(labelled, Integral) and not isinstance(labelled, bool), a.details
        assert 0 < labelled <= n_labels, a.details


@pytest.mark.parametrize("kind", list(SWITCHES))
def test_the_same_stream_without_a_switch_raises_no_concept_alert(kind: str) -> None:
    live = _make_stream(SWITCHES[kind], N_EVENTS, SEEDS[kind], LIVE_START, switch_at=None)
    assert abs(_error_rate(live, LIVE_START, math.inf) - NOISE) < 0.01
    concept = _concept_alerts(live)
    assert concept == [], _describe(concept, LIVE_START)


@pytest.mark.parametrize("fall_at", [None, SWITCH_AT], ids=["whole-stream", "at-the-switch"])
def test_a_stream_whose_error_falls_raises_no_concept_alert(fall_at: int | None) -> None:
    """SEA variant 0 throughout; the live labels are less noisy than the reference's 10%: 2% from the start,
    or from event ``SWITCH_AT`` on (a fall within the stream, after a stretch at the reference's level)."""
    falls = Switch("sea", 0, 0, noise_after=0.02, error_after=(0.01, 0.03))
    if fall_at is None:
        live = _make_stream(falls, N_EVENTS, SEEDS["falls"], LIVE_START, switch_at=None, noise=0.02)
        assert _error_rate(live, LIVE_START, math.inf) < 0.03
    else:
        live = _make_stream(falls, N_EVENTS, SEEDS["falls"], LIVE_START, switch_at=fall_at)
        assert live.switch_ts is not None
        assert abs(_error_rate(live, LIVE_START, live.switch_ts) - NOISE) < 0.01
        assert _error_rate(live, live.switch_ts, math.inf) < 0.03
    concept = _concept_alerts(live)
    assert concept == [], _describe(concept, LIVE_START)
