"""Per-phase reference profiles of a cycle: each signal's binned counts (and a numeric one's moments) per phase.

The phase of an event at time ``ts`` in a cycle of ``period`` seconds cut into ``phases`` equal phases is
``floor((ts mod period) / (period / phases))`` (epoch-aligned: a daily cycle's phase 0 starts at 00:00 UTC).
A :class:`PhaseTable` counts each feature on the *same bins* as its whole-reference profile (a numeric one's
edges, a categorical one's categories and "other" slot), and the model's ``score`` and ``prediction`` likewise
(under ``predictions``), so a live window's sketch needs no change to be compared with a phase; it is stored in
the reference file under ``seasonality`` with the periods :mod:`stream_monitor.stats.seasonality` found.

>>> ts = np.arange(0.0, 4 * 3600.0, 1.0)
>>> x = np.where(ts % 3600 < 1800, 0.0, 10.0)  # low in the first half-hour, high in the second
>>> table = build_phase_table(ts, {"x": (x, np.array([5.0]))}, period=3600.0, phases=2)
>>> table.features["x"].counts.tolist(), table.events.tolist()
([[7200, 0], [0, 7200]], [7200, 7200])
>>> table.coarsen(1).features["x"].counts.tolist()
[[7200, 7200]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.stats.correlation import correlations, pair_sums
from stream_monitor.stats.seasonality import FoundPeriod


def phase_of(ts: NDArray[np.float64], period: float, phases: int) -> NDArray[np.int64]:
    """The phase of each time (see the module docstring)."""
    raw = np.floor(np.mod(ts, period) / (period / phases)).astype(np.int64)
    return np.clip(raw, 0, phases - 1)  # mod's rounding can land exactly on `period`


@dataclass(frozen=True)
class PhaseCounts:
    """One signal in every phase: counts on the whole profile's bins, and (numeric signals) the moments."""

    counts: NDArray[np.int64]  # (phases, bins)
    mean: NDArray[np.float64]  # (phases,); NaN for a phase with no values, and for a categorical signal
    std: NDArray[np.float64]

    @property
    def values(self) -> NDArray[np.int64]:
        return np.asarray(self.counts.sum(axis=1), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        finite = np.isfinite(self.mean)
        return {
            "counts": self.counts.tolist(),
            "mean": [float(m) if f else None for m, f in zip(self.mean, finite, strict=True)],
            "std": [float(s) if f else None for s, f in zip(self.std, finite, strict=True)],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], phases: int) -> PhaseCounts:
        counts = np.asarray(raw["counts"], dtype=np.int64)
        mean = np.array([np.nan if m is None else m for m in raw["mean"]], dtype=np.float64)
        std = np.array([np.nan if s is None else s for s in raw["std"]], dtype=np.float64)
        if counts.ndim != 2 or len(counts) != phases or len(mean) != phases or len(std) != phases:
            raise ReferenceProfileError(f"a phase table of {phases} phases has a feature of another shape")
        return cls(counts, mean, std)


@dataclass(frozen=True)
class PhaseTable:
    """The reference seen through one cycle: events and each numeric feature per phase."""

    period_seconds: float
    phases: int
    events: NDArray[np.int64]  # (phases,) sampled events per phase
    features: dict[str, PhaseCounts] = field(default_factory=dict)
    # the model's outcome signals, "score" and "prediction", counted at the predictions' own times
    predictions: dict[str, PhaseCounts] = field(default_factory=dict)
    # pooled within-phase correlations of the multivariate profile's features (in its order): what a window,
    # which sees a phase or two, should show when features share the cycle (None: not computed)
    correlation: NDArray[np.float64] | None = None

    @property
    def phase_seconds(self) -> float:
        return self.period_seconds / self.phases

    def coarsen(self, phases: int) -> PhaseTable:
        """The same cycle in fewer, longer phases (``phases`` must divide this table's)."""
        if phases == self.phases:
            return self
        if phases < 1 or self.phases % phases:
            raise ValueError(f"{phases} phases do not divide the reference's {self.phases}")
        k = self.phases // phases
        # the finer phases' within-phase correlations stand for the coarser ones (pair sums are not kept)
        events = self.events.reshape(phases, k).sum(axis=1)
        features = {name: _coarsen(pc, phases, k) for name, pc in self.features.items()}
        predictions = {name: _coarsen(pc, phases, k) for name, pc in self.predictions.items()}
        return PhaseTable(self.period_seconds, phases, events, features, predictions, self.correlation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "period_seconds": self.period_seconds,
            "phases": self.phases,
            "events": self.events.tolist(),
            "features": {name: pc.to_dict() for name, pc in self.features.items()},
            "predictions": {name: pc.to_dict() for name, pc in self.predictions.items()},
            "correlation": None
            if self.correlation is None
            else np.where(np.isfinite(self.correlation), self.correlation, 0.0).round(6).tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PhaseTable:
        phases = int(raw["phases"])
        events = np.asarray(raw["events"], dtype=np.int64)
        if phases < 1 or len(events) != phases:
            raise ReferenceProfileError(f"a phase table of {phases} phases has {len(events)} event counts")
        return cls(
            period_seconds=float(raw["period_seconds"]),
            phases=phases,
            events=events,
            features={name: PhaseCounts.from_dict(pc, phases) for name, pc in raw["features"].items()},
            predictions={
                name: PhaseCounts.from_dict(pc, phases) for name, pc in raw.get("predictions", {}).items()
            },
            correlation=None
            if raw.get("correlation") is None
            else np.asarray(raw["correlation"], dtype=np.float64),
        )


def _coarsen(pc: PhaseCounts, phases: int, k: int) -> PhaseCounts:
    """``pc`` with each run of ``k`` adjacent phases pooled into one."""
    counts = pc.counts.reshape(phases, k, -1).sum(axis=1)
    n = pc.values.reshape(phases, k).astype(np.float64)
    mean_k, std_k = np.nan_to_num(pc.mean).reshape(phases, k), np.nan_to_num(pc.std).reshape(phases, k)
    total = n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (n * mean_k).sum(axis=1) / total
        second = (n * (std_k**2 + mean_k**2)).sum(axis=1) / total
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    if not np.isfinite(pc.mean).any():  # a categorical signal has no moments
        mean = std = np.full(phases, np.nan)
    return PhaseCounts(counts, mean, std)


def phase_counts(
    phase: NDArray[np.int64],
    codes: NDArray[np.int64],
    bins: int,
    phases: int,
    values: NDArray[np.float64] | None = None,
) -> PhaseCounts:
    """Counts of bin ``codes`` (``0 .. bins - 1``) per ``phase``, and with ``values`` their moments per phase."""
    cell = phase * bins + codes
    counts = np.bincount(cell, minlength=phases * bins).reshape(phases, bins).astype(np.int64)
    if values is None:
        return PhaseCounts(counts, np.full(phases, np.nan), np.full(phases, np.nan))
    n = np.bincount(phase, minlength=phases).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(phase, weights=values, minlength=phases) / n
        second = np.bincount(phase, weights=values * values, minlength=phases) / n
    return PhaseCounts(counts, mean, np.sqrt(np.maximum(second - mean**2, 0.0)))


@dataclass(frozen=True)
class SeasonalityProfile:
    """What ``reference build`` found (``found``) and the phase tables it kept for those periods."""

    found: tuple[FoundPeriod, ...] = ()
    tables: tuple[PhaseTable, ...] = ()

    def table(self, period_seconds: float) -> PhaseTable | None:
        return next((t for t in self.tables if abs(t.period_seconds - period_seconds) < 1e-6), None)

    def periods_of(self, signal: str) -> list[float]:
        return [f.period_seconds for f in self.found if f.signal == signal]

    def to_dict(self) -> dict[str, Any]:
        return {"found": [f.to_dict() for f in self.found], "tables": [t.to_dict() for t in self.tables]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SeasonalityProfile:
        return cls(
            found=tuple(FoundPeriod.from_dict(f) for f in raw.get("found", [])),
            tables=tuple(PhaseTable.from_dict(t) for t in raw.get("tables", [])),
        )


def build_phase_table(
    ts: NDArray[np.float64],
    columns: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    period: float,
    phases: int,
    scores: tuple[NDArray[np.float64], NDArray[np.bool_]] | None = None,
    coded: dict[str, tuple[NDArray[np.int64], int]] | None = None,
) -> PhaseTable:
    """Per-phase counts of each numeric column ``name -> (values, edges)`` (values aligned with ``ts``; NaN
    for a missing value), binned on the column's whole-profile ``edges``, and of each categorical column
    ``name -> (codes, bins)`` (a value's slot in its profile, -1 when missing); with the correlated features'
    ``(scores, valid)`` rows, their pooled within-phase correlations (each column less its phase's mean)."""
    timed = np.isfinite(ts)  # a row without an event time has no phase: left out of every phase
    phase = phase_of(np.where(timed, ts, 0.0), period, phases)
    features = {}
    for name, (values, edges) in columns.items():
        ok = np.isfinite(values) & timed
        codes = np.searchsorted(edges, values[ok], side="right").astype(np.int64)
        features[name] = phase_counts(phase[ok], codes, len(edges) + 1, phases, values[ok])
    for name, (codes, bins) in (coded or {}).items():
        ok = (codes >= 0) & timed
        features[name] = phase_counts(phase[ok], codes[ok], bins, phases)
    events = np.bincount(phase[timed], minlength=phases).astype(np.int64)
    correlation = None
    if scores is not None:
        z, valid = scores
        valid = valid & timed[:, None]
        z0 = np.where(valid, z, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            phase_means = np.stack(
                [
                    np.bincount(phase, weights=z0[:, j], minlength=phases)
                    / np.bincount(phase, weights=valid[:, j].astype(np.float64), minlength=phases)
                    for j in range(z.shape[1])
                ],
                axis=1,
            )
        centred = z0 - np.nan_to_num(phase_means)[phase]
        correlation, _ = correlations(pair_sums(centred, valid))
    return PhaseTable(float(period), int(phases), events, features, {}, correlation)
