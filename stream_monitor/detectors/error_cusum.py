"""Page's CUSUM on a classifier's error bits, anchored at the reference's error rate, with an exact budget.

Each labelled prediction adds one bit (1 = wrong). Against the hypothesis "the error rate is still ``p0``"
(the reference's), each CUSUM of the bank accumulates the log-likelihood ratio of one designed alternative
``p1`` (``p0`` raised by an odds ratio): ``+log(p1/p0)`` for an error, ``log((1-p1)/(1-p0))`` for a right
answer, floored at zero. It signals when the sum reaches ``h``. A large odds ratio finds a model that went
badly wrong within a few labels; a small one finds a rise of a few points within a few thousand. A falling
error rate only pushes the sums to their floor, so an improvement can never page.

The scores are scaled to small integers, which makes the CUSUM an exact finite Markov chain: its in-control
average run length (labels between false alarms when the error rate is ``p0``) is solved from that chain, not
approximated, and ``h`` is the smallest decision interval whose run length spends the alarm rate it is given.
The price of rounding the scores is a design alternative a hair away from the requested one, never a budget
overspent.

A warning is signalled once per excursion: the bank re-arms when every sum is back at zero. A critical alarm
restarts the sums from zero, so the bank is ready for the next change at once; while the error rate stays up
it keeps signalling, which is what keeps an alert episode open. Whether the episode is over is for a windowed
test to say (a sequential "it recovered" verdict flaps on an error rate that stays a little raised).

Examples
--------
An error rate that rises from 10 % to 40 % after 2,000 labels, with a budget of one false alarm in a million
labels per CUSUM:

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> bits = np.concatenate([rng.random(2000) < 0.1, rng.random(200) < 0.4])
>>> bank = ErrorRateCusum(0.1, run_length_warning=1e6, run_length_critical=1e7)
>>> events = bank.update_many(bits)
>>> [(e.index, e.level) for e in events[:2]], len(events)  # and it keeps signalling while errors stay up
([(2036, 'warning'), (2037, 'critical')], 6)

The same rise after the reference rate *fell* to 2 % (a better model) still alarms; a fall alone never does:

>>> quiet = ErrorRateCusum(0.1, run_length_warning=1e6, run_length_critical=1e7)
>>> quiet.update_many(rng.random(20_000) < 0.02)
[]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from stream_monitor.core.errors import SnapshotError

__all__ = ["CusumEvent", "ErrorRateCusum", "Run", "design_cusum", "in_control_run_length"]

_FORMAT: Final = "stream-monitor.error-cusum/v1"
# Integer resolution: the decision interval spans about this many states, so the chain stays small (a sparse
# solve in milliseconds) while the rounded scores stay within about 1 % of the exact log-likelihood ratios.
_STATES: Final = 3000
_MIN_DOWN: Final = 8
_MAX_STATES: Final = 30_000
DEFAULT_ODDS_RATIOS: Final = (2.0, 10.0)

Level = Literal["warning", "critical"]


@dataclass(frozen=True)
class CusumEvent:
    """Something the bank signalled at one input.

    ``index`` is the position in the batch handed to :meth:`ErrorRateCusum.update_many`; ``labelled`` and
    ``errors`` count the run the signalling CUSUM judged (the inputs since its sum last stood at zero: the
    change point's estimate) and ``first_stamp`` / ``last_stamp`` are the smallest and largest stamps in it.
    """

    index: int
    level: Level
    odds_ratio: float
    statistic: float
    threshold: float
    warning_threshold: float
    labelled: int
    errors: int
    first_stamp: float
    last_stamp: float


@dataclass
class Run:
    """Counts and stamp span of a run of inputs."""

    n: int = 0
    errors: int = 0
    first: float = math.inf
    last: float = -math.inf

    def add(self, bits: npt.NDArray[np.int64], stamps: npt.NDArray[np.float64]) -> None:
        if len(bits):
            self.n += len(bits)
            self.errors += int(bits.sum())
            self.first = min(self.first, float(stamps.min()))
            self.last = max(self.last, float(stamps.max()))

    def as_list(self) -> list[float | None]:
        """Plain data (JSON has no infinity: an empty run's span is ``None``)."""
        if not self.n:
            return [0, 0, None, None]
        return [self.n, self.errors, self.first, self.last]

    @classmethod
    def from_list(cls, raw: Sequence[float | None]) -> Run:
        n, errors, first, last = raw
        if not n or first is None or last is None or errors is None:
            return cls()
        return cls(int(n), int(errors), float(first), float(last))


def in_control_run_length(up: int, down: int, h: int, p: float) -> float:
    """Average number of inputs before a CUSUM with integer scores ``+up`` (prob ``p``) / ``-down`` first
    reaches ``h``, starting at zero: the exact solution of its Markov chain.

    >>> round(in_control_run_length(1, 1, 3, 0.5), 6)  # a fair walk reflected at 0, absorbed at 3
    12.0
    """
    from scipy.sparse import csr_matrix, identity  # local: only a design needs them (0.3 s to import)
    from scipy.sparse.linalg import spsolve

    states = np.arange(h)
    rise = states + up
    fall = np.maximum(states - down, 0)
    rows = np.concatenate([states, states])
    cols = np.concatenate([rise, fall])
    probs = np.concatenate([np.full(h, p), np.full(h, 1.0 - p)])
    inside = cols < h
    q = csr_matrix((probs[inside], (rows[inside], cols[inside])), shape=(h, h))
    run = spsolve((identity(h, format="csr") - q).tocsc(), np.ones(h))
    return float(run[0])


@functools.lru_cache(maxsize=256)
def design_cusum(p0: float, odds_ratio: float, run_length: float) -> tuple[int, int, int, float]:
    """Integer scores and the smallest decision interval for an in-control run length >= ``run_length``.

    Returns ``(up, down, h, scale)``: an error adds ``up``, a right answer subtracts ``down``, an alarm at
    ``h``; ``scale`` converts the integer sum back to nats (``sum / scale``).

    >>> up, down, h, scale = design_cusum(0.1, 10.0, 1e6)
    >>> in_control_run_length(up, down, h, 0.1) >= 1e6 > in_control_run_length(up, down, h - 1, 0.1)
    True
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be in (0, 1), got {p0!r}")
    if not odds_ratio > 1.0:
        raise ValueError(f"odds_ratio must be > 1, got {odds_ratio!r}")
    if not run_length > 1.0:
        raise ValueError(f"run_length must be > 1, got {run_length!r}")
    p1 = p0 * odds_ratio / (1.0 - p0 + p0 * odds_ratio)
    z_up, z_down = math.log(p1 / p0), -math.log((1.0 - p1) / (1.0 - p0))
    # A right answer must move the sum by several units, or rounding would distort a rare-error design.
    nats = max(math.log(run_length), 1.0)
    scale = min(max(_STATES / nats, _MIN_DOWN / z_down), _MAX_STATES / nats)
    up, down = max(1, round(z_up * scale)), max(1, round(z_down * scale))
    # Lorden: an exact likelihood-ratio CUSUM with h = log(run length) nats has at least that run length; the
    # rounded one may need a little more, so search upward from below that bound.
    low, high = 1, max(2, math.ceil(math.log(run_length) * scale))
    while in_control_run_length(up, down, high, p0) < run_length:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if in_control_run_length(up, down, mid, p0) >= run_length:
            high = mid
        else:
            low = mid
    return up, down, high, scale


class ErrorRateCusum:
    """A bank of one-sided Bernoulli CUSUMs on error bits, with a warning and a critical level.

    Parameters
    ----------
    p0 : float
        The error rate that is normal (the reference's, with its uncertainty), in (0, 1).
    run_length_warning, run_length_critical : float
        In-control average run length, in labels, of the whole bank at each level; each CUSUM gets an equal
        share (Bonferroni). ``run_length_critical >= run_length_warning``.
    odds_ratios : sequence of float
        The design alternatives, as odds ratios over ``p0`` (each > 1).
    """

    def __init__(
        self,
        p0: float,
        run_length_warning: float,
        run_length_critical: float,
        odds_ratios: Sequence[float] = DEFAULT_ODDS_RATIOS,
    ) -> None:
        if not run_length_critical >= run_length_warning > 1.0:
            raise ValueError(
                "need run_length_critical >= run_length_warning > 1, got "
                f"{run_length_critical!r}, {run_length_warning!r}"
            )
        if not odds_ratios or any(not r > 1.0 for r in odds_ratios):
            raise ValueError(f"odds_ratios must be a non-empty sequence of numbers > 1, got {odds_ratios!r}")
        self.p0 = float(min(max(p0, 1e-4), 1.0 - 1e-4))
        self.run_length_warning = float(run_length_warning)
        self.run_length_critical = float(run_length_critical)
        self.odds_ratios = tuple(float(r) for r in odds_ratios)
        k = len(self.odds_ratios)
        warn = [design_cusum(self.p0, r, self.run_length_warning * k) for r in self.odds_ratios]
        crit = [design_cusum(self.p0, r, self.run_length_critical * k) for r in self.odds_ratios]
        # One integer scale per CUSUM (the warning design's); the critical interval is rescaled onto it.
        self._up = np.array([d[0] for d in warn], dtype=np.int64)
        self._down = np.array([d[1] for d in warn], dtype=np.int64)
        self._scale = np.array([d[3] for d in warn])
        self._h_warning = np.array([d[2] for d in warn], dtype=np.int64)
        self._h_critical = np.maximum(
            self._h_warning,
            np.array([math.ceil(c[2] / c[3] * w[3]) for w, c in zip(warn, crit, strict=True)], np.int64),
        )
        self._reset_state()

    def _reset_state(self) -> None:
        self._sum = np.zeros(len(self.odds_ratios), dtype=np.int64)
        self._warned = False  # a warning was signalled in the current excursion
        self._runs = [Run() for _ in self.odds_ratios]  # per CUSUM, since its sum last stood at zero

    def statistic(self) -> float:
        """The bank's largest sum, in nats."""
        return float(np.max(self._sum / self._scale))

    def update_many(self, errors: npt.ArrayLike, stamps: npt.ArrayLike | None = None) -> list[CusumEvent]:
        """Feed error bits in order; return what was signalled, in order.

        ``stamps`` (one float per bit, e.g. the prediction's time) are only carried into the events' spans.

        Raises
        ------
        ValueError
            If any value is not 0 or 1 (NaN included: unlabelled predictions have no error bit), or the
            stamps do not match the bits; nothing is fed then.
        """
        bits = np.asarray(errors, dtype=np.float64).ravel()
        if not np.all((bits == 0.0) | (bits == 1.0)):
            raise ValueError("error bits must be 0 or 1 (filter unlabelled predictions first)")
        st = np.arange(len(bits), dtype=np.float64) if stamps is None else np.asarray(stamps, np.float64)
        if st.shape != bits.shape:
            raise ValueError(f"got {len(bits)} error bits but {st.size} stamps")
        events: list[CusumEvent] = []
        ints, pos = bits.astype(np.int64), 0
        while pos < len(ints):
            pos += self._scan(ints[pos:], st[pos:], pos, events)
        return events

    def _scan(
        self,
        bits: npt.NDArray[np.int64],
        stamps: npt.NDArray[np.float64],
        offset: int,
        events: list[CusumEvent],
    ) -> int:
        """Advance to the next signal or the end of ``bits``; returns how many inputs were consumed."""
        n = len(bits)
        steps = np.where(bits[:, None] == 1, self._up, -self._down)  # (n, k)
        # S_t = C_t - min(0, min_{s<=t} C_s) with C_0 the current sum: the reflected walk without a loop
        c = self._sum + np.cumsum(steps, axis=0)
        sums = c - np.minimum(np.minimum.accumulate(c, axis=0), 0)
        levels = np.where(sums >= self._h_critical, 2, np.where(sums >= self._h_warning, 1, 0))
        # a warning needs to be the excursion's first; a critical alarm is always news
        signal = (levels == 2) | ((levels == 1) & (not self._warned))
        zero = (sums == 0).all(axis=1)
        if not self._warned:
            rows = signal.any(axis=1)
        else:
            # after a warning: the next critical alarm, or the next warning after the sums went back to zero
            rearmed = np.maximum.accumulate(zero)
            rows = (levels == 2).any(axis=1) | (rearmed & (levels == 1).any(axis=1))
        hits = np.flatnonzero(rows)
        stop = int(hits[0]) + 1 if hits.size else n
        self._commit(bits[:stop], stamps[:stop], sums[:stop])
        if zero[:stop].any():
            self._warned = False
        if hits.size:
            i = stop - 1
            j = int(np.argmax(levels[i] * 1e6 + sums[i] / self._scale))
            level: Level = "critical" if levels[i, j] == 2 else "warning"
            events.append(self._event(offset + i, level, j))
            if level == "critical":  # restart: ready for the next change, and still signalling this one
                self._sum[:] = 0
                self._runs = [Run() for _ in self.odds_ratios]
                self._warned = False
            else:
                self._warned = True
        return stop

    def _commit(
        self, bits: npt.NDArray[np.int64], stamps: npt.NDArray[np.float64], sums: npt.NDArray[np.int64]
    ) -> None:
        """Take the sums after ``bits`` and extend each CUSUM's run (restarting it after its last zero)."""
        n = len(bits)
        zero = sums == 0
        for j, run in enumerate(self._runs):
            hits = np.flatnonzero(zero[:, j])
            if hits.size:
                self._runs[j] = run = Run()
                tail = int(hits[-1]) + 1
                run.add(bits[tail:], stamps[tail:])
            else:
                run.add(bits, stamps)
        self._sum = sums[n - 1].copy()

    def _event(self, index: int, level: Level, j: int) -> CusumEvent:
        run, ratio = self._runs[j], self.odds_ratios[j]
        statistic = self._sum[j] / self._scale[j]
        h = self._h_critical[j] if level == "critical" else self._h_warning[j]
        threshold, warning = h / self._scale[j], self._h_warning[j] / self._scale[j]
        return CusumEvent(
            index=index,
            level=level,
            odds_ratio=ratio,
            statistic=float(statistic),
            threshold=float(threshold),
            warning_threshold=float(warning),
            labelled=run.n,
            errors=run.errors,
            first_stamp=run.first,
            last_stamp=run.last,
        )

    # ---- state -------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Plain data; :meth:`restore` on a bank with the same parameters continues identically."""
        return {
            "format": _FORMAT,
            "params": self._params(),
            "sum": self._sum.tolist(),
            "warned": self._warned,
            "runs": [r.as_list() for r in self._runs],
        }

    def _params(self) -> list[Any]:
        return [
            self.p0,
            self.run_length_warning,
            self.run_length_critical,
            list(self.odds_ratios),
        ]

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one from :meth:`snapshot`.

        Raises
        ------
        stream_monitor.core.errors.SnapshotError
            If the snapshot is of another format or of a bank with other parameters.
        """
        if state.get("format") != _FORMAT or state.get("params") != self._params():
            raise SnapshotError("error-rate CUSUM snapshot is of another format or other parameters")
        try:
            sums = np.asarray(state["sum"], dtype=np.int64)
            runs = [Run.from_list(r) for r in state["runs"]]
            if sums.shape != (len(self.odds_ratios),) or len(runs) != len(self.odds_ratios):
                raise SnapshotError(f"error-rate CUSUM snapshot does not hold {len(self.odds_ratios)} sums")
            warned = bool(state["warned"])
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"corrupt error-rate CUSUM snapshot: {exc!r}") from exc
        self._sum, self._runs, self._warned = sums, runs, warned
