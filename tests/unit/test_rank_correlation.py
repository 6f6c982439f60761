"""The correlation test correlates the reference bins' normal scores: a few outliers cannot move it."""

from __future__ import annotations

import numpy as np

from stream_monitor.stats.correlation import correlations, normal_scores, pair_sums


def _scored(x: np.ndarray, edges: list[np.ndarray], counts: list[np.ndarray]) -> np.ndarray:
    return np.column_stack(
        [
            normal_scores(c)[np.searchsorted(e, x[:, j], side="right")]
            for j, (e, c) in enumerate(zip(edges, counts, strict=True))
        ]
    )


def test_outliers_move_pearson_but_not_the_rank_correlation() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    a = rng.standard_t(3, n)
    b = 0.5 * a + rng.standard_t(3, n)
    clean = np.column_stack([a, b])
    # reference bins: 20 quantile bins of each column, as reference build makes them
    edges = [np.quantile(clean[:, j], np.linspace(0, 1, 21)[1:-1]) for j in range(2)]
    counts = [
        np.bincount(np.searchsorted(e, clean[:, j], side="right"), minlength=20) for j, e in enumerate(edges)
    ]
    dirty = clean.copy()
    hit = rng.choice(n, 40, replace=False)  # 0.2 % of rows: one huge value each, of opposite signs
    dirty[hit, 0] = 1e4
    dirty[hit, 1] = -1e4
    valid = np.ones_like(clean, dtype=bool)
    pearson = [correlations(pair_sums(x, valid))[0][0, 1] for x in (clean, dirty)]
    rank = [correlations(pair_sums(_scored(x, edges, counts), valid))[0][0, 1] for x in (clean, dirty)]
    assert abs(pearson[1] - pearson[0]) > 0.5  # the outliers dominate the raw correlation
    assert abs(rank[1] - rank[0]) < 0.02  # the bins' scores barely notice them
    assert rank[0] > 0.3  # and the dependence is still seen
