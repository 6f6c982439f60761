"""``replay --workers N`` folds file shards in N processes and merges them here as the service merges
partitions: the same alerts, window statistics (to rounding: merged sums add in another order), counts and
dead letters, with their whole-file line numbers, as ``--workers 1``."""

from __future__ import annotations

import math
import queue
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stream_monitor.app.replay_workers import ReplayWorkerError, _worker, replay_with_workers
from stream_monitor.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example stream with bad and blank lines spread through every shard of the feature file."""
    out = tmp_path_factory.mktemp("shards")
    lines = (EXAMPLES / "stream" / "features.jsonl").read_bytes().splitlines()
    for at, bad in ((7000, b"not json"), (4000, b""), (3600, b'{"model_id": "churn-v3"}'), (10, b"[1, 2]")):
        lines.insert(at, bad)
    features = out / "features.jsonl"
    features.write_bytes(b"\n".join(lines) + b"\n")
    return {
        "features": features,
        "predictions": EXAMPLES / "stream" / "predictions.jsonl",
        "labels": EXAMPLES / "stream" / "labels.jsonl",
    }


def _replay(workspace: Path, files: dict[str, Path], workers: int, tag: str) -> dict[str, Any]:
    out = workspace / f"w{workers}-{tag}"
    out.mkdir(exist_ok=True)
    args = ["replay", "--config", str(workspace / "config.yaml"), "--no-progress", "--workers", str(workers)]
    for stream, path in files.items():
        args += [f"--{stream}", str(path)]
    args += ["--alerts-out", str(out / "alerts.jsonl"), "--stats-out", str(out / "stats.jsonl")]
    args += ["--dead-letters-out", str(out / "dead.jsonl")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    for a in alerts:
        del a["detected_at"]  # wall clock
    return {
        "alerts": sorted(alerts, key=repr),
        "stats": sorted(
            (orjson.loads(x) for x in (out / "stats.jsonl").read_bytes().splitlines()),
            key=lambda r: (r["kind"], r["signal"], r["detector"], r["event_ts"]),
        ),
        "dead": [orjson.loads(x) for x in (out / "dead.jsonl").read_bytes().splitlines()],
        "summary": [line for line in result.output.splitlines() if "lines:" in line],
    }


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_single_process_outcome(
    workspace: Path, damaged: dict[str, Path], workers: int
) -> None:
    one = _replay(workspace, damaged, 1, "d")
    many = _replay(workspace, damaged, workers, "d")
    assert one["alerts"] and many["alerts"] == one["alerts"]
    assert {a["signal"] for a in one["alerts"]} >= {"num_00", "cat_00", "score"}
    assert _close(many["stats"], one["stats"])
    assert many["summary"] == one["summary"]
    # every dead letter, with the line it has in the whole file, in file order
    assert [(d["stream"], d["line"], d["reason"]) for d in many["dead"]] == [
        (d["stream"], d["line"], d["reason"]) for d in one["dead"]
    ]
    lines = damaged["features"].read_bytes().splitlines()
    assert {d["reason"] for d in one["dead"]} == {"not_json", "not_object", "missing_field"}
    for d in many["dead"]:
        assert lines[d["line"] - 1].decode() == d["raw"]


def test_a_file_smaller_than_the_shards_still_replays(workspace: Path, tmp_path: Path) -> None:
    few = tmp_path / "features.jsonl"
    few.write_bytes(
        b"\n".join((EXAMPLES / "stream" / "features.jsonl").read_bytes().splitlines()[:2]) + b"\n"
    )
    result = _replay(workspace, {"features": few}, 4, "few")
    assert result["summary"] == ["  features              2 lines: 2 accepted, 0 dead-lettered, 0 blank"]


def test_a_worker_that_fails_says_why(tmp_path: Path) -> None:
    channel: queue.Queue[Any] = queue.Queue()
    _worker(str(tmp_path / "missing.yaml"), 0, [], "ts", 1 << 20, channel)
    kind, shard, text = channel.get_nowait()
    assert (kind, shard) == ("error", 0) and "missing.yaml" in text


def test_the_parent_stops_on_a_worker_failure(workspace: Path, tmp_path: Path) -> None:
    from stream_monitor.adapters.files.replay import ReplayOutputs, ReplayReport
    from stream_monitor.app.compose import build_engine
    from stream_monitor.config.loading import load_config
    from stream_monitor.core.events import Stream

    engine = build_engine(load_config(workspace / "config.yaml"), shards=2)
    features = EXAMPLES / "stream" / "features.jsonl"
    with pytest.raises(ReplayWorkerError, match=r"replay worker [01] failed") as err:
        replay_with_workers(
            engine,
            tmp_path / "gone.yaml",  # the workers cannot load it
            [(Stream.FEATURES, features)],
            2,
            "ts",
            1 << 20,
            ReplayOutputs(ReplayReport()),
        )
    assert "gone.yaml" in str(err.value)
