"""The report as one self-contained HTML page: tables, and charts drawn by matplotlib as inline SVG.

No script, no stylesheet or font to fetch: the page opens offline and prints. Matplotlib is imported here
only, so the CLI starts without it. SVG text stays text (``svg.fonttype: none``): small, and searchable.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from stream_monitor.report.model import (
    Histogram,
    LabelLag,
    ModelReport,
    Performance,
    Report,
    SignalDrift,
    Timeline,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS: Final = {
    "ok": "#4c72b0",
    "warning": "#dd8452",
    "critical": "#c44e52",
    "resolved": "#55a868",
    "reference": "#a0a7b4",
}
WIDTH_IN: Final = 7.6  # inches, at 72 pt: about 550 px, scaled to the page's width

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


def fmt_ts(ts: float) -> str:
    """Event time as UTC, to the second."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _sev(level: str) -> str:
    return f'<span class="sev {_e(level)}">{_e(level)}</span>'


# ---- charts -----------------------------------------------------------------------------------------------------
class _Charts:
    """Draws figures into SVG strings; each figure's ids are salted with its number, so they never collide."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("svg", force=False)
        self.count = 0
        self.bytes = 0

    @contextmanager
    def figure(
        self, height_in: float, rows: int = 1, sharex: bool = True
    ) -> Iterator[tuple[Figure, list[Axes]]]:
        import matplotlib as mpl
        from matplotlib.figure import Figure

        self.count += 1
        style: dict[Any, Any] = {
            "svg.fonttype": "none",
            "svg.hashsalt": f"sm-report-{self.count}",
            "font.size": 8,
            "font.family": "DejaVu Sans",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#e6e8eb",
            "grid.linewidth": 0.6,
            "legend.frameon": False,
            "timezone": "UTC",
        }
        with mpl.rc_context(style):
            fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
            axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0].tolist()
            yield fig, axes

    def svg(self, fig: Figure) -> str:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        # responsive: the figure scales to its box, keeping its proportions (the viewBox stays)
        text = re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r"<svg\1", text, count=1)
        self.bytes += len(text)
        return text


def _dates(ts: Sequence[float]) -> list[float]:
    """Epoch seconds as matplotlib's date numbers (days), for an axis with a date locator and formatter."""
    return [t / 86400.0 for t in ts]  # matplotlib's epoch is 1970-01-01 UTC


def _vals(xs: Sequence[float | None]) -> list[float]:
    return [math.nan if x is None else x for x in xs]


def _date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8, tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]


def timeline_svg(charts: _Charts, timelines: Sequence[Timeline]) -> str:
    """One panel per test: the statistic per window, its warning and critical thresholds, the alert events."""
    with charts.figure(1.25 + 1.05 * len(timelines), rows=len(timelines)) as (fig, axes):
        for ax, tl in zip(axes, timelines, strict=True):
            pts = [p for p in tl.points if p.statistic is not None]
            if pts:
                x = _dates([p.ts for p in pts])
                ax.plot(
                    x,
                    _vals([p.statistic for p in pts]),
                    color=COLORS["ok"],
                    lw=1.3,
                    label="statistic",
                    zorder=3,
                )
                ax.scatter(
                    x,
                    _vals([p.statistic for p in pts]),
                    c=[COLORS[p.decision] if p.decision in COLORS else COLORS["ok"] for p in pts],
                    s=10,
                    zorder=4,
                )
                warn = [(d, p.warning) for d, p in zip(x, pts, strict=True) if p.warning is not None]
                if warn:
                    ax.step(
                        *zip(*warn, strict=True),
                        where="mid",
                        color=COLORS["warning"],
                        ls="--",
                        lw=1,
                        label="warning",
                    )
                crit = [(d, p.critical) for d, p in zip(x, pts, strict=True) if p.critical is not None]
                if crit:
                    ax.step(
                        *zip(*crit, strict=True),
                        where="mid",
                        color=COLORS["critical"],
                        ls="--",
                        lw=1,
                        label="critical",
                    )
            firing_label = resolved_label = True
            for a in tl.alerts:
                (d,) = _dates([a.ts])
                color = COLORS["resolved"] if a.status == "resolved" else COLORS.get(a.severity, COLORS["ok"])
                ax.axvline(d, color=color, lw=1, alpha=0.5, zorder=1)
                if a.statistic is not None:
                    label = None
                    if a.status == "resolved" and resolved_label:
                        label, resolved_label = "resolved", False
                    elif a.status != "resolved" and firing_label:
                        label, firing_label = "alert", False
                    ax.scatter(
                        [d],
                        [a.statistic],
                        marker="v" if a.status == "resolved" else "^",
                        s=42,
                        color=color,
                        zorder=5,
                        label=label,
                        edgecolors="white",
                        linewidths=0.5,
                    )
                    if not pts and a.threshold is not None:
                        ax.scatter([d], [a.threshold], marker="_", s=80, color=color, zorder=5)
            ax.set_ylabel(tl.detector if tl.kind == timelines[0].kind else f"{tl.detector}\n({tl.kind})")
            ax.set_ylim(bottom=min(0.0, *(p.statistic or 0.0 for p in pts)) if pts else None)
            if not pts and not tl.alerts:
                ax.text(0.5, 0.5, "no record", transform=ax.transAxes, ha="center", color="#8c96a3")
            ax.legend(loc="upper left", fontsize=7, ncol=5, handlelength=1.6)
            _date_axis(ax)
        return charts.svg(fig)


def histogram_svg(charts: _Charts, h: Histogram) -> str:
    """Reference shares against the window's, bin by bin."""
    n = len(h.labels)
    with charts.figure(2.5 if max(len(label) for label in h.labels) < 14 else 2.9) as (fig, (ax,)):
        x = list(range(n))
        ax.bar([i - 0.2 for i in x], h.reference, width=0.4, color=COLORS["reference"], label="reference")
        ax.bar(
            [i + 0.2 for i in x],
            h.window,
            width=0.4,
            color=COLORS.get(h.severity, COLORS["ok"]),
            label="window that fired",
        )
        ax.set_xticks(
            x, h.labels, rotation=55 if n > 6 else 0, ha="right" if n > 6 else "center", fontsize=6.5
        )
        ax.set_ylabel("share of values")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", fontsize=7, ncol=2)
        return charts.svg(fig)


def performance_svg(charts: _Charts, perf: Performance) -> str:
    """Realised accuracy (or MAE) and the label-free estimate per window, label coverage; the error stream."""
    rows = 2 + (1 if perf.error_rate else 0)
    with charts.figure(1.2 + 1.1 * rows, rows=rows) as (fig, axes):
        ax = axes[0]
        if perf.realised:
            ax.plot(
                _dates([p.ts for p in perf.realised]),
                [p.value for p in perf.realised],
                "o-",
                color=COLORS["ok"],
                lw=1.3,
                ms=3.5,
                label=f"realised {perf.metric}",
            )
        if perf.estimated:
            ax.plot(
                _dates([p.ts for p in perf.estimated]),
                [p.value for p in perf.estimated],
                "s--",
                color="#8172b3",
                lw=1.2,
                ms=3.5,
                label="estimated from scores (CBPE)",
            )
        if perf.reference is not None:
            ax.axhline(
                perf.reference, color=COLORS["reference"], lw=1, ls=":", label=f"reference {perf.metric}"
            )
        ax.set_ylabel(perf.metric)
        ax.legend(loc="lower left", fontsize=7, ncol=3)
        cov = [p for p in perf.realised if p.coverage is not None]
        axes[1].plot(
            _dates([p.ts for p in cov]),
            _vals([p.coverage for p in cov]),
            "o-",
            color="#64b5cd",
            lw=1.2,
            ms=3.5,
            label="label coverage",
        )
        axes[1].set_ylim(0, 1.05)
        axes[1].set_ylabel("label coverage")
        if perf.error_rate:
            ax = axes[2]
            ax.plot(
                _dates([p.ts for p in perf.error_rate]),
                [p.value for p in perf.error_rate],
                ".-",
                color=COLORS["critical"],
                lw=1,
                label="error rate (error stream)",
            )
            if perf.reference_error_rate is not None:
                ax.axhline(
                    perf.reference_error_rate, color=COLORS["reference"], ls=":", lw=1, label="reference"
                )
            ax.set_ylabel("error rate")
            ax.legend(loc="upper left", fontsize=7, ncol=2)
        for ax in axes:
            _date_axis(ax)
        return charts.svg(fig)


def label_lag_svg(charts: _Charts, lag: LabelLag) -> str:
    with charts.figure(3.2, rows=2) as (fig, (ax, ax2)):
        x = _dates([p.ts for p in lag.points])
        ax.plot(
            x, _vals([p.p50 for p in lag.points]), "o-", ms=3, lw=1.2, color=COLORS["ok"], label="lag p50"
        )
        ax.plot(
            x,
            _vals([p.p95 for p in lag.points]),
            "s-",
            ms=3,
            lw=1.2,
            color=COLORS["warning"],
            label="lag p95",
        )
        if lag.sla_seconds is not None:
            ax.axhline(lag.sla_seconds, color=COLORS["critical"], ls="--", lw=1, label="freshness SLA")
        ax.set_ylabel("seconds")
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        ax2.plot(
            x, _vals([p.coverage for p in lag.points]), "o-", ms=3, lw=1.2, color="#64b5cd", label="coverage"
        )
        if lag.min_coverage is not None:
            ax2.axhline(lag.min_coverage, color=COLORS["critical"], ls="--", lw=1, label="min coverage")
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("label coverage")
        ax2.legend(loc="lower left", fontsize=7, ncol=2)
        for a in (ax, ax2):
            _date_axis(a)
        return charts.svg(fig)


# ---- the page ---------------------------------------------------------------------------------------------------
def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    attrs: str = "",
    numeric: Sequence[int] = (),
    row_attrs: Sequence[str] = (),
) -> str:
    """An HTML table of already-escaped cells."""
    out = [f"<table{attrs}><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for k, row in enumerate(rows):
        out.append(
            f"<tr{row_attrs[k] if k < len(row_attrs) else ''}>"
            + "".join(
                f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _verdict(m: ModelReport) -> str:
    alerted = m.alerted
    if not alerted:
        return "No alerts: every signal stayed below its warning level (or was not significant)."
    names = ", ".join(f"<b>{_e(s.signal)}</b> ({_e(s.worst)})" for s in alerted[:6])
    more = f" and {len(alerted) - 6} more" if len(alerted) > 6 else ""
    return f"{len(alerted)} signal(s) alerted, most drifted first: {names}{more}."


def _ranking(m: ModelReport) -> str:
    rows = []
    for i, s in enumerate(m.signals, 1):
        first = f"{fmt_ts(s.first_alert.ts)} ({_e(s.first_alert.severity)})" if s.first_alert else ""
        rows.append(
            [
                str(i),
                f"<b>{_e(s.signal)}</b>",
                _e(s.kind),
                _sev(s.worst),
                f"{s.ratio:.2f}",
                _e(s.detector),
                str(s.firing),
                first,
            ]
        )
    table = _table(
        [
            "#",
            "signal",
            "kind",
            "worst",
            "max statistic / threshold",
            "test",
            "alert events",
            "first alert (event time, UTC)",
        ],
        rows,
        f' class="ranking" id="drift-ranking-{_slug(m.model_id)}"',
        numeric=(0, 4, 6),
        row_attrs=[f' data-signal="{_e(s.signal)}"' for s in m.signals],
    )
    return table


def _summary(m: ModelReport, report: Report) -> str:
    parts = []
    rejected = {s.stream: s.rejected for s in report.streams}
    streams = sorted({*(m.accepted or {}), *rejected})
    if streams:
        rows = [
            [
                _e(stream),
                "-" if m.accepted is None else f"{m.accepted.get(stream, 0):,}",
                f"{rejected[stream]:,}" if stream in rejected else "-",
            ]
            for stream in streams
        ]
        note = (
            '<p class="note">Rejected lines are counted over all models: a line that cannot be decoded names '
            "none.</p>"
            if len(report.models) > 1
            else ""
        )
        parts.append(
            "<h4>Events per stream</h4>"
            + _table(["stream", "accepted", "rejected"], rows, numeric=(1, 2))
            + note
        )
    kinds = sorted({k for k, _ in m.alerts_by_kind})
    if kinds:
        rows = [
            [_e(k), *(str(m.alerts_by_kind.get((k, sev), 0)) for sev in ("warning", "critical"))]
            for k in kinds
        ]
        parts.append(
            "<h4>Alert events by kind and severity (firing)</h4>"
            + _table(["kind", "warning", "critical"], rows, numeric=(1, 2))
            + f'<p class="note">{m.resolved} resolved event(s).</p>'
        )
    firsts = sorted(
        (s for s in m.signals if s.first_alert), key=lambda s: s.first_alert.ts if s.first_alert else 0
    )
    if firsts:
        rows = [
            [
                fmt_ts(s.first_alert.ts),
                _e(s.signal),
                _sev(s.first_alert.severity),
                _e(s.first_alert.detector),
                _e(s.first_alert.message),
            ]
            for s in firsts
            if s.first_alert
        ]
        parts.append(
            "<h4>First alert per signal</h4>"
            + _table(["event time (UTC)", "signal", "severity", "test", "message"], rows)
        )
    tested = (
        f"{m.windows} drift window(s) tested" if report.stats_recorded else "window statistics not recorded"
    )
    parts.append(f'<p class="note">{tested}.</p>')
    return "".join(parts)


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
            '<p class="note">No window statistics were given (the service does not record them): the '
            "timelines show the alert events only. <code>stream-monitor replay --report</code> draws "
            "every window.</p>"
        )
    parts += [f'<div class="charts">{_timelines(charts, m.signals)}</div>', "</section>"]
    return "".join(parts)


def _inputs(report: Report) -> str:
    parts = ['<h2 id="inputs">Input and dead letters</h2>']
    if report.streams:
        rows = [
            [
                _e(s.stream),
                "-" if s.lines is None else f"{s.lines:,}",
                "-" if s.accepted is None else f"{s.accepted:,}",
                f"{s.rejected:,}",
            ]
            for s in report.streams
        ]
        parts.append(_table(["stream", "lines", "accepted", "rejected"], rows, numeric=(1, 2, 3)))
    if report.dead_letters:
        rows = [
            [_e(d.stream), _e(d.reason), f"{d.count:,}", _e(d.example[:300])] for d in report.dead_letters
        ]
        parts.append(
            "<h3>Dead-letter reasons</h3>"
            + _table(["stream", "reason", "count", "first example"], rows, ' id="dead-letters"', (2,))
        )
    else:
        parts.append('<p class="note">No dead letters.</p>')
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
