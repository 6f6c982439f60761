"""Screen a concept-drift model's labels for event time on their partition: skewed ahead or too old to join.

A label's ``ts`` is when it became known, which is after its prediction by the label delay (seconds to days):
so the features' lateness rule (the watermark less ``allowed_lateness_seconds``) does not apply to it. What
does apply, per label partition and in arrival order:

* ``future_timestamp``: a ``ts`` more than ``window.max_future_seconds`` ahead of the clock, the features'
  rule (:meth:`~stream_monitor.pipeline.windows.SliceFolder.future_reference`). Refused before it moves the
  partition's label clock, whose boundary would otherwise run ahead and hold every later label back.
* ``late_event``: a ``ts`` more than ``labels.ttl_seconds`` behind the newest label time admitted on the
  partition before it. Its prediction was made before the label became known, so it is older than the TTL
  the join waits for a label: it has left the join (counted as never labelled), and the label could only
  fold against a prediction made by a skewed clock. A label within the TTL but behind the partition's
  watermark is not refused: it joins, and its row travels in the oldest open slice.

Repeated labels are not screened here: the label join (:class:`~stream_monitor.pipeline.joiner.
PredictionLabelJoiner`) sees every label partition of the model and holds ids long after a pair joined, so it
suppresses every repeat (the first label of an event id wins, corrections included) and counts it.

>>> from stream_monitor.pipeline.windows import SliceFolder
>>> slices = SliceFolder(slice_seconds=1.0, allowed_lateness=2.0, max_future=60.0)
>>> s = screen_labels(slices, np.array([100.0, 5000.0, 30.0, 95.0]), ttl=60.0, wall=101.0)
>>> s.keep.tolist(), [(row, reason.value) for row, reason, _ in s.rejected]
([True, False, False, True], [(1, 'future_timestamp'), (2, 'late_event')])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import RejectReason
from stream_monitor.pipeline.event_time import Screened
from stream_monitor.pipeline.windows import SliceFolder


def screen_labels(slices: SliceFolder, ts: NDArray[np.float64], ttl: float, wall: float | None) -> Screened:
    """Screen label rows (in arrival order) about to be assigned to ``slices``, the label partition's; the
    admitted ones must then be assigned (:meth:`SliceFolder.assign`) before the next batch is screened."""
    out = Screened()
    if len(ts) == 0:
        return out
    future = np.zeros(len(ts), dtype=bool)
    reference = 0.0
    if slices.max_future is not None:
        reference = slices.future_reference(ts, wall)
        future = ts > reference + slices.max_future
    # the newest label time admitted before each row: skewed rows never count, and a late row is older than
    # that newest time, so leaving it in does not move the maximum
    admitted_ts = np.where(future, -np.inf, ts)
    before = np.maximum.accumulate(np.concatenate(([slices.max_ts], admitted_ts[:-1])))
    late = (ts < before - ttl) & ~future
    refused = future | late
    if not refused.any():
        return out
    for row in np.flatnonzero(refused).tolist():
        t = float(ts[row])
        if future[row]:
            detail = (
                f"label ts {t:.3f} is {t - reference:.0f} s ahead of the clock ({reference:.3f}); "
                f"window.max_future_seconds is {slices.max_future:g}"
            )
            out.rejected.append((row, RejectReason.FUTURE_TIMESTAMP, detail))
        else:
            newest = float(before[row])
            detail = (
                f"label ts {t:.3f} is {newest - t:.0f} s behind the newest label of its partition "
                f"({newest:.3f}); labels.ttl_seconds is {ttl:g}, so its prediction has left the join"
            )
            out.rejected.append((row, RejectReason.LATE_EVENT, detail))
    slices.future_events += int(future.sum())
    slices.late_events += int(late.sum())
    out.keep = ~refused
    return out
