"""The report as one self-contained HTML page: tables (:mod:`stream_monitor.report.tables`), and charts drawn
by matplotlib as inline SVG (:mod:`stream_monitor.report.charts`).

No script, no stylesheet or font to fetch: the page opens offline and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from stream_monitor.report.charts import (
    _Charts,
    histogram_svg,
    label_lag_svg,
    performance_svg,
    timeline_svg,
)
from stream_monitor.report.model import ModelReport, Report, SignalDrift
from stream_monitor.report.tables import _e, _inputs, _ranking, _sev, _slug, _summary, fmt_ts

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;
max-width:1180px;padding:0 18px 40px;color:#1d232b;line-height:1.4}
h1{font-size:1.5em;margin:18px 0 4px}
h2{font-size:1.3em;border-bottom:2px solid #d9dde3;padding-bottom:4px;margin-top:34px}
h3{font-size:1.05em;margin:22px 0 6px}p.meta{color:#5a6370;margin:2px 0;font-size:.9em}
table{border-collapse:collapse;font-size:.88em;margin:4px 0 10px}th,td{padding:3px 9px;border-bottom:1px solid #e3e6ea;
text-align:left;vertical-align:top}th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;border-radius:3px;padding:0 5px;color:#fff}.sev.critical{background:#c44e52}
.sev.warning{background:#dd8452}.sev.ok{background:#8c96a3}.verdict{font-size:1.05em;margin:8px 0}
.charts{display:flex;flex-wrap:wrap;gap:10px 26px}figure{margin:0;flex:1 1 520px;max-width:580px}
figcaption{font-size:.88em;margin:2px 0;font-weight:600}figcaption span{font-weight:400;color:#5a6370}
figure svg{width:100%;height:auto}nav a{margin-right:12px}.note{color:#5a6370;font-size:.88em}
"""


def _verdict(m: ModelReport) -> str:
    alerted = m.alerted
    if not alerted:
        return "No alerts: every signal stayed below its warning level (or was not significant)."
    names = ", ".join(f"<b>{_e(s.signal)}</b> ({_e(s.worst)})" for s in alerted[:6])
    more = f" and {len(alerted) - 6} more" if len(alerted) > 6 else ""
    return f"{len(alerted)} signal(s) alerted, most drifted first: {names}{more}."


def _figure(caption: str, note: str, svg: str, fig_id: str = "") -> str:
    ident = f' id="{fig_id}"' if fig_id else ""
    return f"<figure{ident}><figcaption>{caption} <span>{note}</span></figcaption>{svg}</figure>"


def _histograms(charts: _Charts, signals: Sequence[SignalDrift]) -> str:
    out = []
    for s in signals:
        h = s.histogram
        if h is None:
            continue
        note = (
            f"{_e(h.detector)}, window {fmt_ts(h.window_start)} – {fmt_ts(h.window_end)} UTC, "
            f"{h.window_values:,} values"
        )
        if not h.complete:
            note += "; only the bins that moved most were recorded"
        out.append(
            _figure(
                f"{_e(s.signal)} {_sev(h.severity)}",
                note,
                histogram_svg(charts, h),
                f"histogram-{_slug(s.signal)}",
            )
        )
    return "".join(out)


def _timelines(charts: _Charts, signals: Sequence[SignalDrift]) -> str:
    out = []
    for s in signals:
        if not s.timelines:
            continue
        note = _e(", ".join(dict.fromkeys(t.kind for t in s.timelines)))
        out.append(
            _figure(
                f"{_e(s.signal)} {_sev(s.worst)}",
                note,
                timeline_svg(charts, s.timelines),
                f"timeline-{_slug(s.signal)}",
            )
        )
    return "".join(out)


def _model(charts: _Charts, m: ModelReport, report: Report) -> str:
    slug = _slug(m.model_id)
    parts = [
        f'<section class="model" id="model-{slug}"><h2>Model {_e(m.model_id)}</h2>',
        f'<p class="verdict">{_verdict(m)}</p>',
        "<h3>Signals by how far they drifted</h3>",
        '<p class="note">Worst level reached first, then the largest ratio of a test\'s statistic to its '
        "critical threshold (to its warning threshold for a test without one).</p>",
        _ranking(m),
    ]
    hist = _histograms(charts, m.signals)
    if hist:
        parts += ["<h3>Reference against the window that fired</h3>", f'<div class="charts">{hist}</div>']
    parts += ["<h3>Summary</h3>", _summary(m, report)]
    if m.performance is not None:
        parts += [
            "<h3>Performance</h3>",
            '<p class="note">Per performance window (prediction time, drawn at its end): the realised '
            "figure once its labels are in, the label-free estimate, the share of its predictions labelled."
            "</p>",
            f'<div class="charts">{_figure("performance", "", performance_svg(charts, m.performance))}</div>',
        ]
    if m.label_lag is not None:
        parts += [
            "<h3>Label lag</h3>",
            f'<div class="charts">{_figure("labels", "", label_lag_svg(charts, m.label_lag))}</div>',
        ]
    parts += [
        "<h3>Timelines</h3>",
        '<p class="note">Each test per window against its warning and critical thresholds (they follow the '
        "window's size when calibrated); triangles are alert events (up: firing, down: resolved).</p>",
    ]
    if not report.stats_recorded:
        parts.append(
            '<p class="note">No window statistics were given: the timelines show the alert events only. '
            "<code>stream-monitor replay --report</code> draws every window, and so does a report of the "
            "records the service publishes to <code>topics.window_stats</code>.</p>"
        )
    parts += [f'<div class="charts">{_timelines(charts, m.signals)}</div>', "</section>"]
    return "".join(parts)


def render_html(report: Report, title: str = "stream-monitor report", generated: str = "") -> str:
    """The whole page. ``generated`` is a line saying when and from what (the caller knows the clock)."""
    charts = _Charts()
    models = [_model(charts, m, report) for m in report.models]
    nav = " ".join(f'<a href="#model-{_slug(m.model_id)}">{_e(m.model_id)}</a>' for m in report.models)
    sources = "".join(f'<p class="meta">{_e(s)}</p>' for s in report.sources)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        + (f'<p class="meta">{_e(generated)}</p>' if generated else "")
        + sources
        + '<p class="meta">Times are event time, UTC.</p>'
        + (f'<nav>{nav} <a href="#inputs">input and dead letters</a></nav>' if len(report.models) > 1 else "")
        + "".join(models)
        + _inputs(report)
        + "</body></html>\n"
    )
    return page
