"""The Faust runtime without a broker: a factory (no module-level app), raw-bytes topics, the web server off or
bound to the configured address, and agent steps that never raise."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest

from stream_monitor.adapters.faust import app as faust_app
from stream_monitor.adapters.faust.app import Incoming, StageRuntime, create_app
from stream_monitor.core.clock import ManualClock
from stream_monitor.pipeline.assembly import build_models
from stream_monitor.pipeline.counters import ServiceStats
from stream_monitor.pipeline.partials import decode_partial
from tests import service_support as ss


def runtime() -> StageRuntime:
    cfg = ss.config(bind_host="127.0.0.2")
    return StageRuntime(
        cfg, build_models(cfg, ss.profile().models, ManualClock(0.0)), ServiceStats(), ["features:0"]
    )


def test_no_module_level_app_and_safe_web_settings() -> None:
    import faust

    assert not any(isinstance(v, faust.App) for v in vars(faust_app).values())
    rt = runtime()
    off = create_app(rt.config, rt.models, rt.stats, rt.sources)
    assert off.conf.web_enabled is False
    assert off.conf.stream_wait_empty is False
    assert off.conf.topic_allow_declare is False
    on = create_app(rt.config, rt.models, rt.stats, rt.sources, web_enabled=True)
    assert on.conf.web_bind == "127.0.0.2"
    assert set(on.agents) >= {"stage1", "stage2"}
    assert off is not on


def test_stage_steps_route_dead_letters_and_never_raise() -> None:
    rt = runtime()
    events = ss.live_events(50, drifting=False)
    batch = [Incoming("features", 0, i, None, orjson.dumps(e)) for i, e in enumerate(events)]
    batch.append(Incoming("features", 0, 50, b"k", b"{nope"))
    out = rt.guard("stage1", rt.stage1, batch)
    dead = [o for o in out if o.topic == rt.config.topics.dlq]
    assert [(o.key, o.value) for o in dead] == [(b"k", b"{nope")]
    assert dict(dead[0].headers or [])["reason"] == b"not_json"

    def boom(_: list[Incoming]) -> list[faust_app.Outgoing]:
        raise ValueError("bad")

    assert rt.guard("stage2", boom, batch) == []
    assert rt.stats.snapshot().agents_up["stage2"] is False


def test_quiet_assigned_partitions_promise_idleness_and_revoked_ones_are_dropped() -> None:
    rt = runtime()
    t = rt.config.topics
    # features:0 carries events; predictions:0 never does, but is assigned, so it must still let stage 2 go on
    rt.stage1(
        [Incoming(t.features, 0, i, None, orjson.dumps(e)) for i, e in enumerate(ss.live_events(20, False))]
    )
    assigned = [(t.features, 0), (t.predictions, 0), (t.partials, 0)]  # the partials topic is not an input
    idle = [decode_partial(o.value or b"") for o in rt.idle(0.0, assigned)]
    assert set(rt.folders) == {(t.features, 0), (t.predictions, 0)}
    assert f"{t.predictions}:0" in {p.source for p in idle if p.idle}
    rt.idle(0.0, [(t.predictions, 0)])  # features:0 was taken away: its new owner re-reads it
    assert set(rt.folders) == {(t.predictions, 0)}


def test_run_offers_the_runtimes_of_the_cli_contract() -> None:
    from click.testing import CliRunner

    from stream_monitor.app.run import RUNTIMES, run_service
    from stream_monitor.cli import main

    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert "--runtime [native|faust]" in help_text
    assert RUNTIMES == ("native", "faust")
    with pytest.raises(ValueError, match="the runtimes are native, faust"):
        run_service(Path("unused.yaml"), "flink")


def test_faust_keeps_its_files_out_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rt = runtime()
    app = create_app(rt.config, rt.models, rt.stats, rt.sources)
    datadir = Path(app.conf.datadir)
    assert datadir.is_absolute() and datadir.parent == Path(
        tempfile.gettempdir()
    )  # Faust's default: ./<app>-data
    assert list(tmp_path.iterdir()) == []
