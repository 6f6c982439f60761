"""Finding recurring cycles in a reference: the periods at which a signal's short-window means repeat.

For each candidate period ``P`` (a minute to a week) that the reference covers at least ``MIN_CYCLES`` times
(to a bucket: a reference of three whole days covers three days),
the events are cut into buckets of ``P / BUCKETS_PER_PERIOD`` seconds and the series of bucket means (or, for
the event rate, bucket counts) is autocorrelated. ``P`` is reported when it is a clear *peak*:

* the autocorrelation at lag ``P`` is at least ``MIN_AUTOCORRELATION`` and at least four times the standard
  error of a white-noise autocorrelation (``4 / sqrt(pairs)``), and
* it exceeds the autocorrelation at lag ``P / 2`` by ``MIN_PROMINENCE``: a cycle is out of step with itself
  half a period later, a slow trend or a random walk is not (its autocorrelation only falls with the lag);
* it is not a multiple of a shorter reported period that explains it as well (a daily cycle also repeats every
  week): a multiple is kept only when its autocorrelation beats the shorter period's by ``MIN_PROMINENCE / 3``.

>>> rng = np.random.default_rng(0)
>>> ts = np.sort(rng.uniform(0, 10 * 86400, 50_000))
>>> daily = np.sin(2 * np.pi * ts / 86400) + rng.normal(0, 1, ts.size)
>>> [(f.period_seconds, round(f.autocorrelation, 2)) for f in find_periods(ts, daily)]
[(86400.0, 0.99)]
>>> find_periods(ts, rng.normal(0, 1, ts.size))
[]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

# A minute to a week: the cycles of human traffic (and of batch jobs that feed models).
CANDIDATE_PERIODS: Final = (
    60.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    3 * 3600.0,
    4 * 3600.0,
    6 * 3600.0,
    8 * 3600.0,
    12 * 3600.0,
    86400.0,
    7 * 86400.0,
)
MIN_CYCLES: Final = 3
BUCKETS_PER_PERIOD: Final = 24  # even, so that half a period is a whole number of buckets
MIN_AUTOCORRELATION: Final = 0.3
MIN_PROMINENCE: Final = 0.3
MIN_EVENTS_PER_BUCKET: Final = 5.0  # sparser, bucket means are mostly noise: the period is not tried
MAX_BUCKETS: Final = 500_000  # bounds the work per candidate
EVENT_RATE: Final = "event_rate"  # the signal name reported for cycles of the event rate
# before "score" or "prediction": the signal name reported for cycles of the model's outcomes
OUTCOME_SIGNAL_PREFIX: Final = "predictions."


@dataclass(frozen=True)
class FoundPeriod:
    """A period at which one signal (a feature, or ``event_rate``) repeats, with the evidence."""

    signal: str
    period_seconds: float
    autocorrelation: float  # at lag period_seconds
    half_period_autocorrelation: float  # at lag period_seconds / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "period_seconds": self.period_seconds,
            "autocorrelation": round(self.autocorrelation, 4),
            "half_period_autocorrelation": round(self.half_period_autocorrelation, 4),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FoundPeriod:
        return cls(
            str(raw["signal"]),
            float(raw["period_seconds"]),
            float(raw["autocorrelation"]),
            float(raw["half_period_autocorrelation"]),
        )


def _lag_correlation(series: NDArray[np.float64], valid: NDArray[np.bool_], lag: int) -> tuple[float, int]:
    """Pearson correlation of the series with itself ``lag`` buckets later, over pairs of non-empty buckets."""
    both = valid[:-lag] & valid[lag:]
    pairs = int(both.sum())
    if pairs < 3:
        return math.nan, pairs
    a, b = series[:-lag][both], series[lag:][both]
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return (float(np.dot(a, b)) / denominator if denominator > 0 else math.nan), pairs


def find_periods(
    ts: NDArray[np.float64],
    values: NDArray[np.float64] | None = None,
    signal: str = EVENT_RATE,
    candidates: tuple[float, ...] = CANDIDATE_PERIODS,
) -> list[FoundPeriod]:
    """The periods (shortest first) at which ``values`` (bucket means), or the event rate when ``values`` is
    None (bucket counts), repeat, by the rule in the module docstring. Non-finite values are left out."""
    ts = np.asarray(ts, dtype=np.float64)
    keep = np.isfinite(ts)
    if values is not None:
        values = np.asarray(values, dtype=np.float64)
        keep &= np.isfinite(values)
        values = values[keep]
    ts = ts[keep]
    if len(ts) < 2:
        return []
    t0, span = float(ts.min()), float(ts.max() - ts.min())
    found: list[FoundPeriod] = []
    for period in sorted(candidates):
        bucket = period / BUCKETS_PER_PERIOD
        n_buckets = math.ceil(span / bucket) if span > 0 else 0
        # a reference of three whole days spans a gap less than three days: a bucket's slack is allowed
        if span + bucket < MIN_CYCLES * period or n_buckets > MAX_BUCKETS:
            continue
        if len(ts) / n_buckets < MIN_EVENTS_PER_BUCKET:
            continue
        index = np.minimum(((ts - t0) / bucket).astype(np.int64), n_buckets - 1)
        counts = np.bincount(index, minlength=n_buckets).astype(np.float64)
        if values is None:
            series, valid = counts, np.ones(n_buckets, dtype=np.bool_)
        else:
            valid = counts > 0
            series = np.bincount(index, weights=values, minlength=n_buckets) / np.maximum(counts, 1.0)
        full, pairs = _lag_correlation(series, valid, BUCKETS_PER_PERIOD)
        half, _ = _lag_correlation(series, valid, BUCKETS_PER_PERIOD // 2)
        if not (math.isfinite(full) and math.isfinite(half)):
            continue
        peak = full >= max(MIN_AUTOCORRELATION, 4.0 / math.sqrt(pairs)) and full - half >= MIN_PROMINENCE
        harmonic = any(
            abs(period / f.period_seconds - round(period / f.period_seconds)) < 1e-9
            and full < f.autocorrelation + MIN_PROMINENCE / 3
            for f in found
        )
        if peak and not harmonic:
            found.append(FoundPeriod(signal, period, full, half))
    return found
