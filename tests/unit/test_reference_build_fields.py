"""``reference build --config`` reads each model's files with its field paths, timestamp format and positive
class, as the service reads its streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from stream_monitor.adapters.files.reference_file import load_reference
from stream_monitor.cli import main

START_MS = 1_763_766_000_000


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _files(tmp_path: Path) -> dict[str, Path]:
    """400 events one second apart, fields under ``meta`` / ``body``, epoch-millisecond times."""
    n = 400
    features = [
        {
            "model": "m",
            "meta": {"id": f"e{i}", "at": START_MS + 1000 * i},
            "body": {"x": i % 7, "c": "ab"[i % 2]},
        }
        for i in range(n)
    ]
    predictions = [
        {
            "model": "m",
            "meta": {"id": f"e{i}", "at": START_MS + 1000 * i + 5},
            "out": {
                "cls": "churn" if i % 4 == 0 else "stay",
                "p": {"churn": 0.1 + (i % 3) / 10, "stay": 0.5},
            },
        }
        for i in range(n)
    ]
    labels = [
        {"model": "m", "meta": {"id": f"e{i}", "at": START_MS + 1000 * i + 60_000}, "truth": "stay"}
        for i in range(n)
    ]
    return {
        "features": _write(tmp_path / "f.jsonl", features),
        "predictions": _write(tmp_path / "p.jsonl", predictions),
        "labels": _write(tmp_path / "l.jsonl", labels),
    }


def _config(tmp_path: Path, **model: Any) -> Path:
    fields = {"event_id": "meta.id", "ts": "meta.at", "features": "body", "prediction": "out.cls"}
    fields |= {"scores": "out.p", "label": "truth"}
    doc = {
        "models": {"m": {"reference": "reference.json", "fields": fields, **model}},
        "service": {"model_id_field": "model"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _build(tmp_path: Path, files: dict[str, Path], *extra: str) -> Any:
    args = ["reference", "build", "--out", str(tmp_path / "reference.json")]
    for stream, path in files.items():
        args += [f"--{stream}", str(path)]
    return CliRunner().invoke(main, [*args, *extra])


def test_the_models_field_paths_and_epoch_millis_are_read(tmp_path: Path) -> None:
    files = _files(tmp_path)
    config = _config(tmp_path, timestamp_format="epoch_millis", positive_class="churn")
    result = _build(tmp_path, files, "--config", str(config))
    assert result.exit_code == 0, result.output
    m = load_reference(tmp_path / "reference.json").models["m"]
    assert sorted(m.features) == ["c", "x"]
    assert m.start_ts == pytest.approx(START_MS / 1000) and m.end_ts == pytest.approx(START_MS / 1000 + 399)
    assert m.predictions is not None and m.predictions.prediction.categories == ("stay", "churn")
    assert m.predictions.score is not None and m.predictions.score.max == pytest.approx(
        0.3
    )  # churn's, not 0.5
    assert m.labels is not None and m.labels.joined == 400
    assert m.labels.lag_seconds is not None


def test_iso_timestamps_are_read_and_a_time_the_service_refuses_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    files = _files(tmp_path)
    features = [orjson.loads(line) for line in files["features"].read_bytes().splitlines()]
    for i, e in enumerate(features):
        e["meta"]["at"] = f"2025-11-21T23:{i // 60:02d}:{i % 60:02d}Z" if i < 399 else 1.7e9
    _write(files["features"], features)
    config = _config(tmp_path, timestamp_format="iso8601")
    result = _build(tmp_path, {"features": files["features"]}, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "skipped 1 event(s): features: 'meta.at' is not a timestamp in iso8601 format" in result.output
    m = load_reference(tmp_path / "reference.json").models["m"]
    assert m.events == 399 and m.end_ts - m.start_ts == pytest.approx(398)


def test_without_the_config_the_default_paths_find_nothing(tmp_path: Path) -> None:
    result = _build(tmp_path, {"features": _files(tmp_path)["features"]})
    assert result.exit_code == 2
    assert "skipped 400 event(s): features: missing model_id" in result.output


def test_a_model_without_usable_feature_events_is_refused_not_written_empty(tmp_path: Path) -> None:
    files = _files(tmp_path)
    stray = {"model": "typo", "meta": {"id": "e1", "at": START_MS}, "out": {"cls": "stay"}}
    with files["predictions"].open("ab") as f:
        f.write(orjson.dumps(stray) + b"\n")
    result = _build(tmp_path, files, "--config", str(_config(tmp_path)))
    assert result.exit_code == 2, result.output
    assert "no usable feature events for model(s) 'typo'" in result.output
    assert not (tmp_path / "reference.json").exists()


def test_events_without_an_id_count_in_the_distributions_but_never_join(tmp_path: Path) -> None:
    files = _files(tmp_path)
    for stream in ("predictions", "labels"):
        events = [orjson.loads(line) for line in files[stream].read_bytes().splitlines()]
        for e in events[:100]:
            del e["meta"]["id"]
        _write(files[stream], events)
    result = _build(tmp_path, files, "--config", str(_config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert (
        "skipped 100 event(s): labels: missing 'meta.id' (a label meets its prediction by it)"
        in result.output
    )
    m = load_reference(tmp_path / "reference.json").models["m"]
    assert m.predictions is not None and m.predictions.events == 400
    assert m.predictions.prediction.counts.sum() == 400  # the 100 id-less ones were not folded into one
    assert m.labels is not None and m.labels.joined == 300
