"""Replays of a seeded cyclic stream, from reference to alerts: ``reference build`` finds the cycle, ``config
init`` writes it, and windows shorter than the cycle are judged against their own phases (and the two
features that share it by their within-phase correlation), so the cycle alone raises nothing while the same
replay without seasonality fires, and a cycle grown twice as wide fires.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from stream_monitor.cli import main as cli
from stream_monitor.config.loading import parse_config
from stream_monitor.config.template import render_config
from stream_monitor.core.alerts import Alert, AlertKind
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.devtools import synthetic_cycles
from stream_monitor.pipeline.local import Engine
from stream_monitor.stats.profiles import ReferenceProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder

MODEL = "cyclic"
PERIOD = 3600.0  # an hourly cycle keeps the replays short; a daily one works the same way
RATE = 5.0  # events per second: windows of config init's 2,000 events span 300 s, a twelfth of the cycle
START = 1_763_766_000.0
AMPLITUDE = 2.0  # of the sine in x (stream_monitor/devtools/synthetic_cycles.py), against noise of sd 1


def cyclic_events(
    seed: int, start: float, seconds: float, amplitude: float = AMPLITUDE
) -> list[dict[str, Any]]:
    return synthetic_cycles.cyclic_events(seed, start, seconds, PERIOD, RATE, amplitude, MODEL)


@functools.cache
def reference() -> ReferenceProfile:
    """Six whole cycles of the same process."""
    builder = ReferenceBuilder(seed=0)
    builder.add_features(cyclic_events(1, START, 6 * PERIOD))
    return builder.build()


def init_config() -> dict[str, Any]:
    """What ``config init`` writes for the reference, as loaded YAML."""
    raw = yaml.safe_load(render_config(reference(), "reference.json"))
    assert isinstance(raw, dict)
    return raw


def replay(config: dict[str, Any], events: list[dict[str, Any]]) -> tuple[list[Alert], int]:
    engine = Engine(parse_config(config), reference().models, ManualClock(0.0))
    slice_seconds = engine.models.slicing[MODEL].slice_seconds
    assert (PERIOD / 24) % slice_seconds == 0  # a slice lies within one phase: exact phase weights
    alerts: list[Alert] = []
    for i in range(0, len(events), 2000):
        alerts += engine.process_events(Stream.FEATURES, events[i : i + 2000]).alerts
    alerts += engine.flush()
    return alerts, engine.pipelines[MODEL].monitor.windows_tested


@pytest.fixture(scope="module")
def live() -> list[dict[str, Any]]:
    """Three more cycles of the same process, after the reference's."""
    return cyclic_events(2, START + 6 * PERIOD, 3 * PERIOD)


def test_reference_build_finds_the_cycle_and_config_init_writes_it_on_that_feature() -> None:
    season = reference().models[MODEL].seasonality
    assert season is not None
    assert [(f.signal, f.period_seconds) for f in season.found] == [("w", PERIOD), ("x", PERIOD)]
    table = season.table(PERIOD)
    assert table is not None and table.phases == 24 and set(table.features) == {"w", "x", "y"}
    mv = reference().models[MODEL].multivariate
    assert mv is not None and table.correlation is not None
    wx = mv.features.index("w"), mv.features.index("x")
    assert (
        mv.correlation[wx] > 0.4 and abs(table.correlation[wx]) < 0.05
    )  # the shared cycle, and within phases
    model = init_config()["models"][MODEL]
    assert model["seasonality"] is False  # `off`, as YAML reads it
    for name in ("w", "x"):
        assert model["features"][name]["seasonality"] == {"period_seconds": PERIOD, "phases": 24}
    assert "seasonality" not in model["features"]["y"]
    assert model["window"]["max_seconds"] < PERIOD / 4  # windows see a part of the cycle only


def test_a_cycle_judged_phase_by_phase_raises_nothing_and_judged_whole_fires(
    live: list[dict[str, Any]],
) -> None:
    config = init_config()
    alerts, tested = replay(config, live)
    assert tested >= 30 and alerts == []
    config["models"][MODEL]["thresholds"] = "fixed"  # the fixed levels are phase-matched too
    assert replay(config, live)[0] == []
    config["models"][MODEL]["thresholds"] = "calibrated"
    for name in ("w", "x"):  # the same replay, seasonality off
        config["models"][MODEL]["features"][name]["seasonality"] = "off"
    alerts, tested_off = replay(config, live)
    assert tested_off == tested
    fired = {(a.kind, a.signal) for a in alerts}
    assert {(AlertKind.COVARIATE_DRIFT, "x"), (AlertKind.COVARIATE_DRIFT, "w")} <= fired
    assert (AlertKind.MULTIVARIATE_DRIFT, "feature_correlations") in fired  # the cycle's correlation of w, x
    assert "y" not in {signal for _, signal in fired}  # y, which does not cycle, is quiet either way


def test_a_cycle_twice_as_wide_raises_covariate_drift_on_that_feature() -> None:
    wider = cyclic_events(3, START + 6 * PERIOD, 2 * PERIOD, amplitude=2 * AMPLITUDE)
    alerts, _ = replay(init_config(), wider)
    drift = [a for a in alerts if a.kind is AlertKind.COVARIATE_DRIFT]
    assert drift and {a.signal for a in drift} == {"x"}  # w keeps its cycle, y has none
    details = next(a.details for a in drift if "seasonality" in a.details)
    assert details["seasonality"]["period_seconds"] == PERIOD
    assert sum(details["seasonality"]["phase_weights"].values()) == pytest.approx(1.0)


def test_reference_build_prints_its_cycles_and_keeps_a_period_asked_for(tmp_path: Path) -> None:
    """``--period`` keeps the phase profiles of a cycle nobody found, so a hand-set seasonality validates;
    without it, the same setting is refused with the fix."""
    features = tmp_path / "features.jsonl"
    features.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in cyclic_events(4, START, 4 * PERIOD)[::4]))
    built = CliRunner().invoke(
        cli,
        [
            "reference",
            "build",
            "--features",
            str(features),
            "--out",
            str(tmp_path / "r.json"),
            "--period",
            "600",
        ],
    )
    assert built.exit_code == 0, built.output
    assert f"{MODEL}: cycles: w every 3600 s (r 0.99); x every 3600 s (r 1.00)" in built.output
    config = tmp_path / "monitor.yaml"
    model = {"reference": "r.json", "seasonality": {"period_seconds": 600, "phases": 12}}
    config.write_text(yaml.safe_dump({"models": {MODEL: model}}))
    assert CliRunner().invoke(cli, ["config", "validate", str(config)]).exit_code == 0
    model["seasonality"] = {"period_seconds": 86400}
    config.write_text(yaml.safe_dump({"models": {MODEL: model}}))
    refused = CliRunner().invoke(cli, ["config", "validate", str(config)])
    assert refused.exit_code != 0
    assert "no phase profiles for a 86400 s cycle (it has: 600 s, 3600 s)" in refused.output
    assert "reference build --period 86400" in refused.output
