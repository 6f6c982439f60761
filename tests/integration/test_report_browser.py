"""The HTML report as a person sees it: a seeded drifting replay's report, opened in headless Chromium.

It loads without a console message or a page error, its screenshot is a picture (not one flat colour), the
drifted feature is named first, and every chart is drawn. No Kafka needed; Chromium is (``scripts/ci_setup.sh``
installs Debian's ``chromium``): without it this test fails, it does not skip.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from stream_monitor.adapters.files.jsonl import read_jsonl_events
from stream_monitor.adapters.files.reference_file import save_reference
from stream_monitor.app.replay import run_replay
from stream_monitor.config.template import write_config
from stream_monitor.devtools.synthetic import generate
from stream_monitor.devtools.synthetic_jsonl import write_jsonl
from stream_monitor.devtools.synthetic_spec import Drift, StreamSpec
from stream_monitor.stats.reference_builder import ReferenceBuilder

DRIFTED = "num_03"
CHROMIUM_SECONDS = 120  # a cold start on a busy 2-core machine takes a few seconds; a hang fails the test
# Collects what the page itself would report: script errors, failed resource loads (capture phase) and
# console.error calls, into an attribute --dump-dom prints. Injected into a copy: the report has no script.
RECORDER = (
    "<script>(function(){var d=document.documentElement,seen=[];d.setAttribute('data-recorder','on');"
    "function note(m){seen.push(String(m));d.setAttribute('data-page-errors',seen.join(' | '));}"
    "window.addEventListener('error',function(e){note(e.message||('failed to load '+"
    "((e.target&&(e.target.src||e.target.href))||e.type)));},true);"
    "window.addEventListener('unhandledrejection',function(e){note('rejection: '+e.reason);});"
    "var ce=console.error;console.error=function(){note([].join.call(arguments,' '));ce.apply(console,arguments);};"
    "})();</script>"
)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: the report is tested in headless Chromium. Run scripts/ci_setup.sh "
            "(CI does) or `apt-get install -y chromium`."
        )
    return path


def _run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", *args],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS}s: {exc.stderr!r}")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report ``replay --report`` writes for a seeded stream whose num_03 shifts by one sd."""
    work = tmp_path_factory.mktemp("report")
    spec_ref = StreamSpec(seed=1, label_delay_mean_s=30.0)
    write_jsonl(generate(spec_ref, 20_000), work / "ref")
    spec = StreamSpec(seed=2, label_delay_mean_s=30.0)
    drift = Drift("mean_shift", DRIFTED, start_ts=spec.start_ts + 150.0, magnitude=1.0)
    live = write_jsonl(generate(spec, 30_000, [drift]), work / "live")
    builder = ReferenceBuilder()
    bad: dict[str, int] = {}
    builder.add_features(read_jsonl_events(work / "ref" / "features.jsonl", bad))
    builder.add_predictions(read_jsonl_events(work / "ref" / "predictions.jsonl", bad))
    builder.add_labels(read_jsonl_events(work / "ref" / "labels.jsonl", bad))
    save_reference(builder.build(), work / "reference.json")
    write_config(work / "reference.json", work / "config.yaml")
    out = work / "report.html"
    run_replay(
        work / "config.yaml",
        live["features"],
        live["predictions"],
        live["labels"],
        str(work / "alerts.jsonl"),
        None,
        False,
        report_out=out,
    )
    assert out.exists()
    return out


def test_the_report_loads_without_errors_and_shows_what_drifted(report: Path) -> None:
    page = report.read_text()
    png = report.with_suffix(".png")
    shot = _run_chromium(f"--screenshot={png}", "--window-size=1400,2000", report.as_uri())
    assert shot.returncode == 0, shot.stderr[-3000:]
    # the page writes nothing to the console (Chromium logs every console message and uncaught error as CONSOLE)
    console = [line for line in shot.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    # a picture of the page, not a blank or one flat colour
    assert png.exists() and png.stat().st_size > 30_000
    with Image.open(png) as img:
        assert img.size == (1400, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50

    # the DOM after load, with a recorder of page errors (scripts, failed loads, console.error)
    probe = report.with_name("probe.html")
    probe.write_text(page.replace("<head>", "<head>" + RECORDER, 1))
    dumped = _run_chromium("--dump-dom", probe.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    dom = dumped.stdout
    assert 'data-recorder="on"' in dom, "the recorder did not run: the DOM dump is not of the loaded page"
    errors = re.search(r'data-page-errors="([^"]*)"', dom)
    assert errors is None, html.unescape(errors.group(1)) if errors else ""
    assert not [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]

    # the drifted feature is named first: in the verdict and at the top of the ranking
    ranking = dom[dom.index('id="drift-ranking-churn-v3"') :]
    first = re.search(r'<tr data-signal="([^"]+)"', ranking)
    assert first is not None and first.group(1) == DRIFTED
    verdict = re.search(r'<p class="verdict">(.*?)</p>', dom)
    assert verdict is not None and re.search(rf"most drifted first: <b>{DRIFTED}</b>", verdict.group(1))

    # every chart is drawn: an SVG with paths of real coordinates; the drifted feature's histogram among them
    svgs = re.findall(r"<svg.*?</svg>", dom, flags=re.DOTALL)
    assert len(svgs) >= 10
    for svg in svgs:
        paths = re.findall(r'<path[^>]* d="([^"]+)"', svg)
        assert len(paths) >= 5 and all(re.search(r"\d", d) for d in paths)
    assert f'id="histogram-{DRIFTED}"' in dom and f'id="timeline-{DRIFTED}"' in dom
    assert len(page) < 600_000  # about 260 KiB for this replay
