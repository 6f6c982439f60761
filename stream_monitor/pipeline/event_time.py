"""The event-time screen of one model's parsed rows on one fold: future and late rows refused with their
reason, repeated event ids suppressed, before anything is folded.

The rules are :class:`~stream_monitor.pipeline.windows.SliceFolder`'s (:meth:`~stream_monitor.pipeline.
windows.SliceFolder.screen` and :meth:`~stream_monitor.pipeline.windows.SliceFolder.fresh`); this module turns
their verdicts into rejections by row, which the partition fold maps back to message positions for the
dead-letter topic. Repeats are counted, not dead-lettered: a producer's retry is not a bad message, and a
dead-letter topic full of them would hide the ones that are.

>>> from stream_monitor.pipeline.windows import SliceFolder
>>> slices = SliceFolder(slice_seconds=1.0, allowed_lateness=2.0, max_future=60.0)
>>> s = screen_rows(slices, np.array([100.0, 5000.0, 100.0, 90.0]), ["a", "b", "a", "c"], wall=101.0)
>>> s.keep.tolist(), [(row, reason.value) for row, reason, _ in s.rejected], s.duplicates
([True, False, False, False], [(1, 'future_timestamp'), (3, 'late_event')], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import Rejection, RejectReason
from stream_monitor.pipeline.event_id_hash import hash_event_ids
from stream_monitor.pipeline.windows import ADMITTED, FUTURE, SliceFolder


@dataclass
class Screened:
    """What the screen kept of a batch of rows (``keep`` None: all of them) and why it refused the rest."""

    keep: NDArray[np.bool_] | None = None
    rejected: list[tuple[int, RejectReason, str]] = field(default_factory=list)  # (row, reason, detail)
    duplicates: int = 0


def screen_rows(
    slices: SliceFolder,
    ts: NDArray[np.float64],
    event_ids: Sequence[str],
    wall: float | None,
    dedupe: bool = True,
) -> Screened:
    """Screen rows (in arrival order) about to be folded into ``slices``; ``dedupe`` off for rows whose
    repeats stage 2 drops itself (a concept-drift model's predictions, at the label join)."""
    out = Screened()
    if len(ts) == 0:
        return out
    reference = slices.future_reference(ts, wall) if slices.max_future is not None else 0.0
    verdict = slices.screen(ts, wall)
    admitted = verdict == ADMITTED
    if not admitted.all():
        for row in np.flatnonzero(~admitted).tolist():
            t = float(ts[row])
            if verdict[row] == FUTURE:
                detail = (
                    f"ts {t:.3f} is {t - reference:.0f} s ahead of the clock ({reference:.3f}); "
                    f"window.max_future_seconds is {slices.max_future:g}"
                )
                out.rejected.append((row, RejectReason.FUTURE_TIMESTAMP, detail))
            else:
                detail = (
                    f"ts {t:.3f}: its slice was behind the watermark when it arrived "
                    f"(window.allowed_lateness_seconds is {slices.allowed_lateness:g})"
                )
                out.rejected.append((row, RejectReason.LATE_EVENT, detail))
    keep = admitted
    if dedupe and admitted.any():
        rows = np.flatnonzero(admitted)
        ids = event_ids if len(rows) == len(ts) else [event_ids[i] for i in rows.tolist()]
        fresh = slices.fresh(hash_event_ids(ids), ts[rows])
        out.duplicates = len(fresh) - int(fresh.sum())
        if out.duplicates:
            keep = admitted.copy()
            keep[rows[~fresh]] = False
    out.keep = None if keep.all() else keep
    return out


def event_rejections(screened: Screened, refused: Sequence[Rejection], n_events: int) -> list[Rejection]:
    """The screen's rejections by index of the events a parser saw (``refused`` are the parser's own, whose
    rows it left out, so row ``i`` is the ``i``-th event not refused)."""
    if not screened.rejected:
        return []
    kept = np.arange(n_events)
    if refused:
        kept = np.delete(kept, [r.index for r in refused])
    return [Rejection(int(kept[row]), reason, detail) for row, reason, detail in screened.rejected]
