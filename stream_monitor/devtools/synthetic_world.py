"""The world of a synthetic stream and the seeded random streams every draw comes from.

The world (feature means and sds, correlated pairs, category frequencies, the logistic model's weights) of a
:class:`~stream_monitor.devtools.synthetic_spec.StreamSpec` depends only on its ``model_id`` and feature
counts (:func:`stream_params`); the events depend on its ``seed``, drawn in blocks of ``_BLOCK`` events from
independent random streams keyed by the spawn keys below.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from stream_monitor.devtools.synthetic_spec import FloatArray, StreamSpec

__all__ = ["StreamParams", "stream_params"]

# Events are drawn in blocks of this many, each block from its own random streams. Changing it changes every
# stream a seed gives (and the committed examples): do not.
_BLOCK: Final = 8192
# Spawn keys of the independent random streams.
_WORLD: Final = 0
_FEATURES: Final = 1
_OUTCOMES: Final = 2
_DRIFTS: Final = 3

_CORRELATION: Final = 0.8
_BIAS: Final = -1.0  # about 30 % positives
_LOGIT_VARIANCE: Final = 4.0  # logit sd 2 over the features: a useful but imperfect model
_NUMERIC_SHARE: Final = 0.75  # of the logit variance, when there are numeric and categorical features


@dataclass(frozen=True, eq=False)
class StreamParams:
    """The world of a :class:`StreamSpec`: feature distributions and the logistic model (read-only arrays).

    The model's logit is ``bias + sum_j numeric_weights[j] * (x_j - means[j]) / sds[j]
    + sum_j category_effects[j][code_j]``; after a ``concept_switch`` the labels follow the same formula
    with ``switched_numeric_weights`` and ``switched_category_effects``.
    """

    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    means: FloatArray
    sds: FloatArray
    pairs: tuple[tuple[int, int], ...]
    correlation: float
    categories: tuple[tuple[str, ...], ...]
    category_probs: tuple[FloatArray, ...]
    numeric_weights: FloatArray
    category_effects: tuple[FloatArray, ...]
    bias: float
    switched_numeric_weights: FloatArray
    switched_category_effects: tuple[FloatArray, ...]


def _world_rng(model_id: str, *key: int) -> np.random.Generator:
    entropy = int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_WORLD, *key)))


def _event_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _frozen(a: FloatArray) -> FloatArray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=64)
def _params(model_id: str, n_numeric: int, n_categorical: int, n_pairs: int) -> StreamParams:
    k, c = n_numeric, n_categorical
    means, sds, raw_w = np.empty(k), np.empty(k), np.empty(k)
    for j in range(k):
        rng = _world_rng(model_id, 0, j)
        means[j] = round(float(rng.uniform(-2.0, 50.0)), 2)
        sds[j] = round(float(np.exp(rng.uniform(np.log(0.5), np.log(20.0)))), 2)
        raw_w[j] = rng.normal()
    pairs = tuple((2 * p, 2 * p + 1) for p in range(n_pairs))
    corr = np.eye(k)
    for a, b in pairs:
        corr[a, b] = corr[b, a] = _CORRELATION

    categories: list[tuple[str, ...]] = []
    probs: list[FloatArray] = []
    raw_effects: list[FloatArray] = []
    for j in range(c):
        rng = _world_rng(model_id, 1, j)
        n_cat = int(rng.integers(4, 9))
        p = np.sort(rng.uniform(0.7, 1.3, n_cat) / np.arange(1, n_cat + 1))[::-1]
        p = p / p.sum()
        effects = rng.normal(size=n_cat)
        categories.append(tuple(chr(ord("a") + i) for i in range(n_cat)))
        probs.append(p)
        raw_effects.append(effects - p @ effects)  # centred: mean effect 0 under the reference

    numeric_var = _LOGIT_VARIANCE * (_NUMERIC_SHARE if c else 1.0) if k else 0.0
    categorical_var = _LOGIT_VARIANCE - numeric_var
    weights = raw_w * math.sqrt(numeric_var / float(raw_w @ corr @ raw_w)) if k else raw_w
    raw_cat_var = sum(float(p @ e**2) for p, e in zip(probs, raw_effects, strict=True))
    cat_scale = math.sqrt(categorical_var / raw_cat_var) if c else 0.0
    effects_scaled = [e * cat_scale for e in raw_effects]

    switched_w = weights.copy()
    strongest = np.argsort(-np.abs(weights), kind="stable")[: math.ceil(k / 2)]
    switched_w[strongest] *= -1.0
    switched_effects = [-e if k == 0 else e.copy() for e in effects_scaled]
    return StreamParams(
        numeric_names=tuple(f"num_{j:02d}" for j in range(k)),
        categorical_names=tuple(f"cat_{j:02d}" for j in range(c)),
        means=_frozen(means),
        sds=_frozen(sds),
        pairs=pairs,
        correlation=_CORRELATION,
        categories=tuple(categories),
        category_probs=tuple(_frozen(p) for p in probs),
        numeric_weights=_frozen(weights),
        category_effects=tuple(_frozen(e) for e in effects_scaled),
        bias=_BIAS,
        switched_numeric_weights=_frozen(switched_w),
        switched_category_effects=tuple(_frozen(e) for e in switched_effects),
    )


def stream_params(spec: StreamSpec) -> StreamParams:
    """Return the world of ``spec``: feature means, sds, correlations, categories and model weights.

    It depends only on ``model_id``, the feature counts and ``correlated_pairs``, never on ``seed``; the
    parameters of one feature do not depend on how many others there are (the weights are rescaled together
    so that the logit keeps a standard deviation of about 2).

    Parameters
    ----------
    spec
        The stream specification.

    Returns
    -------
    StreamParams
        Means in [-2, 50], sds in [0.5, 20] (log-uniform), correlated pairs, categories and the model.

    Examples
    --------
    >>> p1 = stream_params(StreamSpec(seed=1))
    >>> p2 = stream_params(StreamSpec(seed=2, n_numeric=8))
    >>> bool(p1.means[3] == p2.means[3]), p1.pairs, p1.categories[0][:3]
    (True, ((0, 1),), ('a', 'b', 'c'))
    """
    n_pairs = min(spec.correlated_pairs, spec.n_numeric // 2)
    return _params(spec.model_id, spec.n_numeric, spec.n_categorical, n_pairs)
