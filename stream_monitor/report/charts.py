"""The report's charts, drawn by matplotlib as inline SVG: timelines, histograms, performance, label lag.

Matplotlib is imported here only (and lazily), so the CLI starts without it. SVG text stays text
(``svg.fonttype: none``): small, and searchable.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, Any, Final

from stream_monitor.report.model import Histogram, LabelLag, Performance, Timeline

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
