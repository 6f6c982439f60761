"""The report's HTML tables (signals ranked by drift, a model's summary, the inputs and dead letters) and the
escaping and formatting helpers the page shares.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from stream_monitor.report.model import ModelReport, Report


def fmt_ts(ts: float) -> str:
    """Event time as UTC, to the second."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _sev(level: str) -> str:
    return f'<span class="sev {_e(level)}">{_e(level)}</span>'


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
