"""The fixed shape of a model's window sketches: which signals, in which order, on which reference bins.

Two sketches merge only if their layouts have the same :attr:`SketchLayout.fingerprint`, a digest of the
signals and the reference edges and categories they are binned on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

SignalRole = Literal["feature", "prediction", "score"]
N_NUMERIC_CODES: Final = 5  # ok, null, absent, wrong_type, infinite (see core.rows)
N_CAT_CODES: Final = 4  # ok, null, absent, wrong_type


@dataclass(frozen=True)
class NumericSignal:
    name: str
    role: SignalRole
    profile: NumericProfile


@dataclass(frozen=True)
class CategoricalSignal:
    name: str
    role: SignalRole
    profile: CategoricalProfile


class SketchLayout:
    """The fixed shape of every sketch of one model: which signals, in which order, on which bins."""

    def __init__(
        self,
        numeric: Sequence[NumericSignal],
        categorical: Sequence[CategoricalSignal],
        multivariate_width: int = 0,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.num_bins = max((s.profile.n_bins for s in self.numeric), default=1)
        self.cat_bins = max((s.profile.n_bins for s in self.categorical), default=1)
        self.means = np.array([s.profile.mean for s in self.numeric], dtype=np.float64)
        self.scales = np.array([s.profile.std if s.profile.std > 0 else 1.0 for s in self.numeric])
        self.edges = [s.profile.edges for s in self.numeric]
        # Edges as a (max edges, signals) matrix padded with +inf, for branch-free binning of a whole block.
        self.edge_matrix = np.full((max((len(e) for e in self.edges), default=0), len(self.numeric)), np.inf)
        for j, e in enumerate(self.edges):
            self.edge_matrix[: len(e), j] = e
        self.mins = np.array([s.profile.min for s in self.numeric], dtype=np.float64)
        self.maxs = np.array([s.profile.max for s in self.numeric], dtype=np.float64)
        self.multivariate_width = multivariate_width
        self.numeric_index = {s.name: i for i, s in enumerate(self.numeric)}
        self.categorical_index = {s.name: i for i, s in enumerate(self.categorical)}
        digest = hashlib.sha256()
        for s in self.numeric:
            digest.update(f"n:{s.name}:{s.role}:".encode() + s.profile.edges.tobytes())
        for c in self.categorical:
            digest.update(f"c:{c.name}:{c.role}:{list(c.profile.categories)!r}".encode())
        digest.update(f"mv:{multivariate_width}".encode())
        self.fingerprint = digest.hexdigest()[:16]
