"""The label join's store sized from the reference: lags recorded by ``reference build``, the cap and TTL
``config init`` writes, and a store that holds nothing when the reference has no labels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stream_monitor.config.join_sizing import (
    BYTES_PER_OUTSTANDING,
    DEFAULT_SLA_SECONDS,
    MIN_OUTSTANDING,
    MIN_TTL_SECONDS,
    join_sizing,
)
from stream_monitor.config.loading import load_config
from stream_monitor.config.template import write_config
from stream_monitor.stats.reference_builder import ReferenceBuilder


def test_the_store_holds_the_labelled_for_their_lag_and_the_rest_for_the_ttl() -> None:
    s = join_sizing(predictions_per_second=100.0, labelled_share=0.9, lag_p99=600.0)
    assert s.ttl_seconds == 6000.0  # ten times the p99 lag
    assert s.expected_outstanding == pytest.approx(100.0 * (0.9 * 600.0 + 0.1 * 6000.0))
    assert s.max_outstanding >= 1.5 * s.expected_outstanding
    assert s.max_outstanding <= 1.5 * s.expected_outstanding * 1.1  # rounded up to two digits, no more
    assert s.mib == pytest.approx(s.max_outstanding * BYTES_PER_OUTSTANDING / 2**20)


def test_the_ttl_is_at_least_an_hour_and_at_most_the_freshness_sla() -> None:
    assert join_sizing(10.0, 1.0, 1.0).ttl_seconds == MIN_TTL_SECONDS
    assert join_sizing(10.0, 1.0, 1e6).ttl_seconds == DEFAULT_SLA_SECONDS
    assert join_sizing(10.0, 1.0, 1e6, sla_seconds=7200.0).ttl_seconds == 7200.0


def test_unknown_lags_assume_every_prediction_waits_the_whole_ttl() -> None:
    s = join_sizing(10.0, None, None)
    assert s.ttl_seconds == DEFAULT_SLA_SECONDS
    assert s.expected_outstanding == pytest.approx(10.0 * DEFAULT_SLA_SECONDS)


def test_a_quiet_model_gets_the_schema_minimum() -> None:
    assert join_sizing(0.01, 1.0, 5.0).max_outstanding == MIN_OUTSTANDING
    assert join_sizing(0.0, None, None).max_outstanding == MIN_OUTSTANDING


def _reference(labels_delay: float | None, ms: bool = False) -> ReferenceBuilder:
    builder = ReferenceBuilder(seed=0)
    n = 2000
    scale = 1000.0 if ms else 1.0
    t0 = 1_700_000_000.0
    builder.add_features(
        {"model_id": "m", "event_id": f"e{i}", "ts": (t0 + i * 0.1) * scale, "features": {"x": float(i % 7)}}
        for i in range(n)
    )
    builder.add_predictions(
        {
            "model_id": "m",
            "event_id": f"e{i}",
            "ts": (t0 + i * 0.1) * scale,
            "prediction": i % 2,
            "score": 0.8,
        }
        for i in range(n)
    )
    if labels_delay is not None:  # every fourth prediction never labelled; lags 0..labels_delay
        builder.add_labels(
            {
                "model_id": "m",
                "event_id": f"e{i}",
                "ts": (t0 + i * 0.1 + labels_delay * (i % 100) / 99) * scale,
                "label": i % 2,
            }
            for i in range(n)
            if i % 4
        )
    return builder


@pytest.mark.parametrize("ms", [False, True], ids=["seconds", "milliseconds"])
def test_reference_build_records_the_label_lags_and_the_labelled_share(ms: bool) -> None:
    labels = _reference(labels_delay=50.0, ms=ms).build().models["m"].labels
    assert labels is not None
    assert labels.labelled_share == pytest.approx(0.75)
    assert labels.lag_seconds["max"] == pytest.approx(50.0, rel=1e-6)
    assert labels.lag_seconds["p50"] == pytest.approx(25.0, abs=1.0)
    assert 45.0 < labels.lag_seconds["p99"] <= 50.0


def test_an_older_reference_without_lags_still_loads() -> None:
    from stream_monitor.stats.profiles import LabelProfile

    raw = _reference(labels_delay=5.0).build().models["m"].labels.to_dict()  # type: ignore[union-attr]
    del raw["lag_seconds"], raw["labelled_share"]
    old = LabelProfile.from_dict(raw)
    assert old.lag_seconds == {} and old.labelled_share is None


def _config_for(tmp_path: Path, labels_delay: float | None) -> str:
    from stream_monitor.adapters.files.reference_file import save_reference

    ref = tmp_path / "reference.json"
    save_reference(_reference(labels_delay).build(), ref)
    write_config(ref, tmp_path / "config.yaml")
    return (tmp_path / "config.yaml").read_text()


def test_config_init_writes_the_sized_store_and_it_validates(tmp_path: Path) -> None:
    text = _config_for(tmp_path, labels_delay=50.0)
    model = load_config(tmp_path / "config.yaml").models["m"]
    profile = _reference(50.0).build().models["m"]
    assert profile.labels is not None
    p99 = profile.labels.lag_seconds["p99"]
    assert profile.events_per_second == pytest.approx(10.0, rel=0.01)  # 2,000 predictions in 200 s
    expected = join_sizing(profile.events_per_second, 0.75, p99)
    assert model.labels.ttl_seconds == expected.ttl_seconds == MIN_TTL_SECONDS
    assert model.labels.max_outstanding == expected.max_outstanding
    assert f"p99 lag of {p99:.3g} s" in text and "MiB at ~61 bytes each" in text


def test_config_init_holds_nothing_for_a_reference_without_labels(tmp_path: Path) -> None:
    text = _config_for(tmp_path, labels_delay=None)
    model = load_config(tmp_path / "config.yaml").models["m"]
    assert model.labels.max_outstanding == MIN_OUTSTANDING
    assert "no prediction is held for a join" in text
    assert math.isfinite(model.labels.ttl_seconds)
