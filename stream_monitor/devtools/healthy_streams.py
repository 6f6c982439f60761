"""Seeded *healthy* streams of awkward but stable kinds, for false-alarm benchmarks and tests.

Each kind is a tuple of :class:`FeatureLaw` s, one per numeric feature ``x0``, ``x1``, ...: a base noise
(normal, Student-t, lognormal), optionally a cycle (a sine of event time, of a period and amplitude) and rare
outliers (huge values of either sign). Nothing drifts: a stream and a reference drawn from the same kind with
different seeds come from one process, so every alert on them is a false alarm. :class:`Shift` injects a real
change (a mean shift of one feature, in units of its normal-equivalent spread) to measure detection delay.

A model's score is ``sigmoid(w . z)`` over the features' clipped robust z-scores, and its prediction is
``score >= 0.5``: the prediction stream inherits the features' cycles and tails.

>>> import numpy as np
>>> ts = event_times(4, start_ts=0.0, rate=1.0, seed=0)
>>> stream = draw(KINDS["student_t"], ts, seed=3)
>>> sorted(stream.columns), stream.score.shape
(['x0', 'x1', 'x2', 'x3'], (4,))
>>> shifted = draw(KINDS["student_t"], ts, seed=3, shift=Shift("x0", at_index=2, magnitude=1.0))
>>> unit = KINDS["student_t"][0].unit  # the normal-equivalent sd of Student-t(2) noise of scale 2
>>> np.round((shifted.columns["x0"] - stream.columns["x0"]) / unit, 3).tolist()
[0.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import orjson
from numpy.typing import NDArray
from scipy.special import stdtrit

__all__ = [
    "KINDS",
    "FeatureLaw",
    "HealthyStream",
    "Shift",
    "draw",
    "event_times",
    "feature_events",
    "prediction_events",
    "write_jsonl",
]

FloatArray = NDArray[np.float64]
Family = Literal["normal", "student_t", "lognormal"]

_Q75: Final = 0.6744897501960817  # the standard normal's upper quartile: IQR / (2 * _Q75) is a robust sd
_Z_CLIP: Final = 4.0  # the model sees robust z-scores clipped here, so one outlier cannot flip every score
_CHUNK: Final = 20_000  # events encoded per write
_DECIMALS: Final = 6  # of feature values


@dataclass(frozen=True)
class FeatureLaw:
    """How one numeric feature is drawn.

    Parameters
    ----------
    family
        ``normal``, ``student_t`` (``shape`` = degrees of freedom) or ``lognormal`` (``shape`` = sigma of the
        log).
    shape
        See ``family``; ignored for ``normal``.
    loc, scale
        The value is ``loc + scale * noise``.
    period_s, amplitude
        A cycle ``amplitude * unit * sin(2 pi ts / period_s + phase)`` is added when ``period_s`` is set;
        ``amplitude`` is in units of the noise's robust sd (:attr:`unit`).
    outlier_rate
        Share of values replaced by ``loc +- unit * 10**u``, ``u`` uniform in [2, 4] (100 to 10,000 robust sds).
    """

    family: Family = "normal"
    shape: float = 0.0
    loc: float = 0.0
    scale: float = 1.0
    period_s: float | None = None
    amplitude: float = 0.0
    phase: float = 0.0
    outlier_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in ("normal", "student_t", "lognormal"):
            raise ValueError(f"unknown family {self.family!r}; valid: normal, student_t, lognormal")
        if self.family != "normal" and not self.shape > 0:
            raise ValueError(f"{self.family} needs a shape > 0, got {self.shape}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if self.period_s is not None and not self.period_s > 0:
            raise ValueError(f"period_s must be > 0 or None, got {self.period_s}")
        if not 0.0 <= self.outlier_rate < 0.5:
            raise ValueError(f"outlier_rate must be in [0, 0.5), got {self.outlier_rate}")

    @property
    def unit(self) -> float:
        """The noise's normal-equivalent sd (interquartile range / 1.349): finite for every tail."""
        if self.family == "normal":
            q = _Q75
        elif self.family == "student_t":
            q = float(stdtrit(self.shape, 0.75))
        else:  # lognormal: the quartiles are exp(+-_Q75 * sigma); half their gap
            q = math.sinh(_Q75 * self.shape)
        return self.scale * q / _Q75

    @property
    def median(self) -> float:
        return self.loc + (self.scale if self.family == "lognormal" else 0.0)

    def sample(self, ts: FloatArray, rng: np.random.Generator) -> FloatArray:
        n = len(ts)
        if self.family == "normal":
            noise = rng.standard_normal(n)
        elif self.family == "student_t":
            noise = rng.standard_t(self.shape, n)
        else:
            noise = np.exp(self.shape * rng.standard_normal(n))
        x = self.loc + self.scale * noise
        if self.period_s is not None:
            x += self.amplitude * self.unit * np.sin(2 * math.pi * ts / self.period_s + self.phase)
        if self.outlier_rate > 0:
            hit = rng.random(n) < self.outlier_rate
            k = int(hit.sum())
            size = self.unit * 10.0 ** rng.uniform(2.0, 4.0, k)
            x[hit] = self.loc + np.where(rng.random(k) < 0.5, -size, size)
        return np.asarray(x, dtype=np.float64)


def _cycles(amplitude: float) -> tuple[FeatureLaw, ...]:
    periods = (60.0, 900.0, 4 * 3600.0, 86400.0)  # a minute, a quarter hour, four hours, a day
    return tuple(
        FeatureLaw(loc=10.0 * j, scale=1.0 + j, period_s=p, amplitude=amplitude, phase=0.7 * j)
        for j, p in enumerate(periods)
    )


KINDS: Final[dict[str, tuple[FeatureLaw, ...]]] = {
    "cycles_0.5sd": _cycles(0.5),
    "cycles_2sd": _cycles(2.0),
    "student_t": tuple(FeatureLaw("student_t", df, loc=5.0 * df, scale=2.0) for df in (2.0, 3.0, 4.0, 5.0)),
    "lognormal": tuple(FeatureLaw("lognormal", s, scale=10.0) for s in (0.5, 1.0, 1.5, 2.0)),
    "outliers": tuple(FeatureLaw(loc=100.0, scale=5.0, outlier_rate=r) for r in (1e-4, 3e-4, 1e-3, 3e-3)),
    "mix": (
        FeatureLaw("student_t", 3.0, loc=20.0, period_s=3600.0, amplitude=1.0),
        FeatureLaw("lognormal", 1.0, scale=5.0, period_s=86400.0, amplitude=0.5, outlier_rate=1e-3),
        FeatureLaw("student_t", 2.0, scale=3.0, outlier_rate=3e-4),
        FeatureLaw(loc=50.0, scale=4.0, period_s=60.0, amplitude=2.0),
    ),
}
"""Every stream kind of the false-alarm benchmark: four features each (``x0`` .. ``x3``)."""


@dataclass(frozen=True)
class Shift:
    """A real change: ``feature`` moves by ``magnitude`` of its law's :attr:`FeatureLaw.unit` from event
    ``at_index`` on (the model's score follows, as it would)."""

    feature: str
    at_index: int
    magnitude: float


@dataclass(frozen=True, eq=False)
class HealthyStream:
    ts: FloatArray
    columns: dict[str, FloatArray] = field(repr=False)
    score: FloatArray = field(repr=False)

    @property
    def prediction(self) -> NDArray[np.int64]:
        return (self.score >= 0.5).astype(np.int64)

    def __len__(self) -> int:
        return len(self.ts)


def event_times(n: int, start_ts: float, rate: float, seed: int) -> FloatArray:
    """``n`` increasing event times from ``start_ts``, exponential gaps of mean ``1 / rate``, to the ms."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    gaps = np.random.default_rng([seed, 1]).exponential(1.0 / rate, n)
    gaps[:1] = 0.0
    return np.round(start_ts + np.cumsum(gaps), 3)


def draw(
    laws: tuple[FeatureLaw, ...], ts: FloatArray, seed: int, shift: Shift | None = None
) -> HealthyStream:
    """The features ``x0`` ... and the model's score at event times ``ts``; the same seed, the same values
    (a shift changes its feature from ``at_index`` on, and the score, nothing else)."""
    columns: dict[str, FloatArray] = {}
    logit = np.zeros(len(ts))
    for j, law in enumerate(laws):
        name = f"x{j}"
        x = law.sample(ts, np.random.default_rng([seed, 2, j]))
        if shift is not None and shift.feature == name:
            x[shift.at_index :] += shift.magnitude * law.unit
        columns[name] = x
        z = np.clip((x - law.median) / law.unit, -_Z_CLIP, _Z_CLIP)
        logit += (0.8 if j % 2 == 0 else -0.5) * z
    if shift is not None and shift.feature not in columns:
        raise ValueError(f"shift names {shift.feature!r}; features: {', '.join(columns)}")
    score = np.round(1.0 / (1.0 + np.exp(-logit)), 4)
    return HealthyStream(ts, columns, score)


def feature_events(stream: HealthyStream, model_id: str) -> list[dict[str, Any]]:
    """The feature events as dicts (docs/formats.md), for tests that feed an engine in process."""
    names = list(stream.columns)
    cols = [stream.columns[n].tolist() for n in names]
    return [
        {
            "event_id": f"e-{k:09d}",
            "model_id": model_id,
            "ts": t,
            "features": dict(zip(names, v, strict=True)),
        }
        for k, (t, *v) in enumerate(zip(stream.ts.tolist(), *cols, strict=True))
    ]


def prediction_events(stream: HealthyStream, model_id: str) -> list[dict[str, Any]]:
    rows = zip(stream.ts.tolist(), stream.prediction.tolist(), stream.score.tolist(), strict=True)
    return [
        {"event_id": f"e-{k:09d}", "model_id": model_id, "ts": t, "prediction": p, "score": s}
        for k, (t, p, s) in enumerate(rows)
    ]


def _feature_lines(stream: HealthyStream, model_id: str, start: int, stop: int) -> str:
    # A template rather than orjson per dict: four times faster, and repr of a finite float is valid JSON.
    names = list(stream.columns)
    model = orjson.dumps(model_id).decode()
    body = ",".join(f'"{n}":{{}}' for n in names)
    line = f'{{{{"event_id":"e-{{:09d}}","model_id":{model},"ts":{{!r}},"features":{{{{{body}}}}}}}}}\n'
    cols = [np.round(stream.columns[n][start:stop], _DECIMALS).tolist() for n in names]
    ts = stream.ts[start:stop].tolist()
    return "".join(line.format(start + k, t, *v) for k, (t, *v) in enumerate(zip(ts, *cols, strict=True)))


def _prediction_lines(stream: HealthyStream, model_id: str, start: int, stop: int) -> str:
    model = orjson.dumps(model_id).decode()
    line = (
        f'{{{{"event_id":"e-{{:09d}}","model_id":{model},"ts":{{!r}},"prediction":{{}},"score":{{!r}}}}}}\n'
    )
    ts, pred, score = (a[start:stop].tolist() for a in (stream.ts, stream.prediction, stream.score))
    return "".join(line.format(start + k, *row) for k, row in enumerate(zip(ts, pred, score, strict=True)))


def write_jsonl(
    stream: HealthyStream, out_dir: str | Path, model_id: str, start: int = 0, stop: int | None = None
) -> dict[str, Path]:
    """``features.jsonl`` and ``predictions.jsonl`` (docs/formats.md) of events ``start`` to ``stop``."""
    end = len(stream) if stop is None else min(stop, len(stream))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"features": out / "features.jsonl", "predictions": out / "predictions.jsonl"}
    for name, lines in (("features", _feature_lines), ("predictions", _prediction_lines)):
        with paths[name].open("wb") as fh:
            for a in range(start, end, _CHUNK):
                fh.write(lines(stream, model_id, a, min(a + _CHUNK, end)).encode())
    return paths
