"""Concept drift at label speed: the joined error bits, in label-arrival order, through a sequential detector.

Every (prediction, label) pair the joiner completes becomes one error bit (1 = the model was wrong), in the
order of their arrival (:mod:`~stream_monitor.pipeline.joined_pairs`: the data's order, not the batching's,
so a replay and the Kafka service feed the detector the same sequence and raise the same alerts). When the
detector fires, the observation goes out at once: ``event_ts`` is the arrival of the label that tipped it, the
window is the span of predictions it judged.

The default detector is :class:`~stream_monitor.detectors.error_cusum.ErrorRateCusum`, anchored at the
reference's error rate and given one test's share of the model's false-alarm budget, converted to labels with
the reference's label rate. River's binary detectors (``performance.error_stream_detector``) are available
too; they learn their baseline from the stream, carry no budget, and signal in both directions, so a signal
whose recent error rate is not above the reference's is dropped as an improvement.

Either way the detector only ever says "worse": whether an episode is over is for the windowed accuracy test
to say, once the error stream has stopped signalling.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from stream_monitor.core.alerts import AlertKind, Severity, WindowInfo
from stream_monitor.core.errors import SnapshotError
from stream_monitor.detectors.error_cusum import CusumEvent, ErrorRateCusum, Run
from stream_monitor.pipeline.lifecycle import Observation

if TYPE_CHECKING:
    from stream_monitor.detectors.error_bits import BinaryErrorDetector

__all__ = ["ErrorStreamMonitor", "LabelSpeedObservation", "RiverErrorStream"]

SIGNAL: Final = "performance"
# River detectors, tuned to stay quiet on stable streams (see detectors/river_adapter.py)
_RIVER_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "ddm": {"warm_start": 500, "warning_threshold": 3.0, "drift_threshold": 4.0},
}
_RECENT: Final = 50  # bits behind a River signal's direction check

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LabelSpeedObservation:
    """An observation of the error stream, with the label arrival it belongs to."""

    event_ts: float
    window: WindowInfo
    observation: Observation


class RiverErrorStream:
    """A River binary detector behind the interface of :class:`ErrorRateCusum` (events with levels).

    River's warning level maps to ``warning``, its drift to ``critical``; a signal whose last ``50`` bits
    err no more often than ``p0`` is an improvement and is not reported. River resets itself after a drift,
    so the detector is ready for the next change; it has no recovery signal.
    """

    def __init__(self, name: str, p0: float) -> None:
        # River takes half a second to import: only a config that asks for one of its detectors pays for it
        from stream_monitor.detectors.error_bits import make_error_detector

        self.name = name
        self.p0 = p0
        self._detector: BinaryErrorDetector = make_error_detector(name, **_RIVER_PARAMS.get(name, {}))
        self._recent: deque[int] = deque(maxlen=_RECENT)
        self._run = Run()  # since River last reset
        self._warned = False

    def update_many(self, errors: npt.ArrayLike, stamps: npt.ArrayLike) -> list[CusumEvent]:
        bits = np.asarray(errors, np.float64)
        st = np.asarray(stamps, np.float64)
        if not np.all((bits == 0.0) | (bits == 1.0)):
            raise ValueError("error bits must be 0 or 1 (filter unlabelled predictions first)")
        events: list[CusumEvent] = []
        for i, (bit, stamp) in enumerate(zip(bits.tolist(), st.tolist(), strict=True)):
            self._detector.update(bit)
            self._recent.append(int(bit))
            run = self._run
            run.n, run.errors = run.n + 1, run.errors + int(bit)
            run.first, run.last = min(run.first, stamp), max(run.last, stamp)
            drift, warning = self._detector.drift_detected, self._detector.warning_detected
            if not (drift or (warning and not self._warned)):
                continue
            worse = sum(self._recent) / len(self._recent) > self.p0
            if worse:
                events.append(
                    CusumEvent(
                        i,
                        "critical" if drift else "warning",
                        math.nan,
                        1.0,
                        1.0,
                        1.0,
                        run.n,
                        run.errors,
                        run.first,
                        run.last,
                    )
                )
            self._warned = not drift
            if drift:
                self._run = Run()
        return events

    def snapshot(self) -> dict[str, Any]:
        return {
            "detector": self._detector.snapshot(),
            "recent": list(self._recent),
            "run": self._run.as_list(),
            "warned": self._warned,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._detector.restore(state["detector"])
        self._recent = deque((int(b) for b in state["recent"]), maxlen=_RECENT)
        self._run = Run.from_list(state["run"])
        self._warned = bool(state["warned"])


class ErrorStreamMonitor:
    """Error bits in, label-speed observations of the ``performance`` signal out.

    Parameters
    ----------
    detector : str
        ``cusum`` (the default bank) or a River binary detector's name.
    reference_error : float
        The reference's error rate.
    reference_labelled : int
        How many labelled pairs it was measured on (its uncertainty widens ``p0``).
    alpha_warning, alpha_critical : float
        False-alarm probability per label at each level.
    """

    def __init__(
        self,
        detector: str,
        reference_error: float,
        reference_labelled: int,
        alpha_warning: float,
        alpha_critical: float,
    ) -> None:
        self.name = detector
        self.reference_error = reference_error
        # The reference's error rate is itself an estimate: anchor at its upper 97.5 % bound, so a model that
        # is exactly as good as its reference does not spend the budget faster than stated.
        se = math.sqrt(max(reference_error * (1 - reference_error), 1e-4) / max(reference_labelled, 1))
        self.p0 = min(max(reference_error + 1.96 * se, 1e-4), 0.5)
        self._detector: ErrorRateCusum | RiverErrorStream = (
            ErrorRateCusum(self.p0, 1.0 / alpha_warning, 1.0 / alpha_critical)
            if detector == "cusum"
            else RiverErrorStream(detector, self.p0)
        )
        self._since = [0, 0]  # labelled and errors since the detector's last critical alarm

    def observe(
        self, arrival: FloatArray, pred_ts: FloatArray, errors: FloatArray
    ) -> list[LabelSpeedObservation]:
        """Error bits in the order they arrived (see :mod:`~stream_monitor.pipeline.joined_pairs`), each with
        its arrival and its prediction's time; what the detector signalled on them."""
        if not len(errors):
            return []
        events = self._detector.update_many(errors, pred_ts)
        seen = np.cumsum(errors)
        out = []
        for e in events:
            # the stream's own rate before the run the detector judged: since its last critical alarm
            n_before = self._since[0] + e.index + 1 - e.labelled
            e_before = self._since[1] + int(seen[e.index]) - e.errors
            out.append(
                self._observation(e, float(arrival[e.index]), e_before / n_before if n_before else math.nan)
            )
            if e.level == "critical":
                self._since = [-(e.index + 1), -int(seen[e.index])]
        self._since = [self._since[0] + len(errors), self._since[1] + int(seen[-1])]
        return out

    def _observation(self, e: CusumEvent, event_ts: float, before: float) -> LabelSpeedObservation:
        window = WindowInfo(e.first_stamp, e.last_stamp, e.labelled)
        rate = e.errors / e.labelled if e.labelled else math.nan
        details: dict[str, Any] = {
            "labelled": e.labelled,
            "errors": e.errors,
            "error_rate": rate,
            "error_rate_before": before,
            "reference_error_rate": self.reference_error,
            "baseline_error_rate": self.p0,
            "label_ts": event_ts,
        }
        if math.isfinite(e.odds_ratio):
            details["odds_ratio"] = e.odds_ratio
        level = Severity.CRITICAL if e.level == "critical" else Severity.WARNING
        obs = Observation(
            AlertKind.CONCEPT_DRIFT,
            SIGNAL,
            level,
            self.name,
            e.statistic,
            e.threshold,
            e.warning_threshold,
            None,
            details,
            f"error rate {rate:.1%} over the last {e.labelled} labelled predictions vs "
            f"{self.reference_error:.1%} in the reference ({self.name}, at label speed)",
            conclusive=True,
        )
        return LabelSpeedObservation(event_ts, window, obs)

    # ---- state ---------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"detector": self.name, "state": self._detector.snapshot(), "since": self._since}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("detector") != self.name:
            raise SnapshotError(f"error-stream snapshot of {state.get('detector')!r}, not {self.name!r}")
        self._detector.restore(state["state"])
        self._since = [int(x) for x in state.get("since", [0, 0])]
