"""``demo --offline`` keeps its files where it says, explains its times, and names the new category."""

from __future__ import annotations

from pathlib import Path

import orjson

from stream_monitor.app.demo_offline import run_offline_demo


def test_the_offline_demo_keeps_its_files_and_says_where_they_are(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    printed: list[str] = []
    alerts = run_offline_demo(printed.append, workdir=work)
    assert alerts
    text = "\n".join(printed)
    assert f"the demo's files are in {work}" in text and "events' own time" in text
    for name in ("reference.json", "config.yaml", "alerts.jsonl", "report.html"):
        assert (work / name).exists() and name in text
    page = (work / "report.html").read_text()  # the report of the demo's run, its histograms included
    assert 'id="histogram-num_00"' in page and 'id="histogram-cat_00"' in page
    written = [orjson.loads(x) for x in (work / "alerts.jsonl").read_bytes().splitlines()]
    assert [a["alert_id"] for a in written] == [a.alert_id for a in alerts]
    cat = next(a for a in alerts if a.signal == "cat_00")
    assert "'new_value'" in cat.message  # the alert names the category that appeared
    # a second run empties the folder of the first one's files rather than appending to them
    run_offline_demo(printed.append, workdir=work)
    assert len((work / "alerts.jsonl").read_bytes().splitlines()) == len(written)
