"""Nearest-neighbour measures: action consistency, transition diversity, local dynamics residuals.

Belkhale et al. 2023, "Data Quality in Imitation Learning" (Sec. 4), name two properties of data
that decide how well a learned policy does: *action divergence* (how much the actions taken in the
same state disagree; high divergence makes imitation average incompatible behaviours) and
*transition diversity* (how varied the outcomes of similar (state, action) pairs are). Both are
defined on exact states; with continuous states we estimate them from k nearest neighbours in the
standardized space, and express each as a ratio to the same spread between random pairs, so that
0 means "neighbours agree exactly" and about 1 means "neighbours are no more alike than strangers".

Neighbours from the same episode are skipped: consecutive steps of one smooth trajectory are
trivially alike and would make every dataset look consistent.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> states = rng.uniform(-1, 1, size=(2000, 2))
    >>> episodes = np.arange(2000)                      # every row its own episode
    >>> neighbour_spread(states, np.sin(3 * states), episodes, k=5)["ratio"] < 0.1
    True
    >>> neighbour_spread(states, rng.normal(size=(2000, 2)), episodes, k=5)["ratio"] > 0.8
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

MAX_TREE_DIMS = 12  # beyond this k-d trees degrade; project onto principal components


def standardize(x: np.ndarray, floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - mean) / std`` per column (float32), with ``std`` floored so constant columns give 0."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    mean = x.mean(axis=0, dtype=np.float64)
    std = np.maximum(x.std(axis=0, dtype=np.float64), floor)
    return ((x - mean) / std).astype(np.float32), mean, std


def principal_projection(x: np.ndarray, max_dims: int = MAX_TREE_DIMS) -> np.ndarray:
    """``[D, d]`` projection onto the top ``d <= max_dims`` principal components of ``x`` (or identity)."""
    dim = x.shape[1]
    if dim <= max_dims:
        return np.eye(dim, dtype=np.float32)
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered.astype(np.float64), full_matrices=False)
    return vt[:max_dims].T.astype(np.float32)


def _neighbours_other_episode(
    features: np.ndarray, groups: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[n, k]`` of each row's k nearest rows from other episodes, and a validity mask."""
    n = len(features)
    k_query = min(n, 3 * k + 1 if groups is not None else k + 1)
    tree = cKDTree(features)
    _, idx = tree.query(features, k=k_query, workers=-1)
    idx = idx.reshape(n, k_query)
    valid = (idx < n) & (idx != np.arange(n)[:, None])
    if groups is not None:
        valid &= groups[np.minimum(idx, n - 1)] != groups[:, None]
    # keep the first k valid neighbours of every row (stable sort puts valid columns first)
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(valid, order, axis=1)


def neighbour_spread(
    features: np.ndarray,
    targets: np.ndarray,
    groups: np.ndarray | None = None,
    k: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Spread of ``targets`` among the k nearest neighbours in ``features``, relative to random pairs.

    ``ratio = E_knn ||y_i - y_j||^2 / E_random ||y_i - y_j||^2`` with ``y`` standardized per column
    (for integer targets, i.e. discrete actions: the disagreement rate instead of squared distance).
    """
    targets = np.asarray(targets)
    discrete = targets.ndim == 1 and targets.dtype.kind in "biu"
    if not discrete:
        targets = standardize(targets)[0]
    nb, valid = _neighbours_other_episode(features, groups, k)
    rows = valid.any(axis=1)
    if not rows.any():
        return {"ratio": None, "k": k, "rows": 0}
    rng = np.random.default_rng(seed)
    partner = rng.integers(0, len(targets), size=len(targets))
    if discrete:
        local = (targets[nb] != targets[:, None]).astype(np.float64)
        background = float(np.mean(targets[partner] != targets))
    else:
        local = np.sum((targets[nb] - targets[:, None, :]) ** 2, axis=-1, dtype=np.float64)
        background = float(np.mean(np.sum((targets[partner] - targets) ** 2, axis=-1)))
    local_mean = float(np.sum(local * valid) / np.sum(valid))
    ratio = local_mean / background if background > 0 else 0.0
    return {"ratio": ratio, "k": k, "rows": int(rows.sum())}


def local_residuals(
    features: np.ndarray,
    targets: np.ndarray,
    reference_rows: np.ndarray,
    k: int = 8,
    eps: float = 1.0,
    chunk: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Residual of every row's targets from its k nearest reference rows, and their local spread.

    Returns ``(residual, spread)``, both ``[N, T]``: ``residual = y - median_j y_j`` over the
    neighbours ``j`` and ``spread = median_j |y_j - median_j y_j|``, how much the neighbours
    themselves disagree (large in sparse or genuinely noisy regions, where a large residual means
    less). The tree holds only ``reference_rows`` (a random subsample) so that scoring a million rows
    stays cheap; a row never counts as its own neighbour. ``eps`` allows (1 + eps)-approximate
    neighbours, plenty for flagging outliers and several times faster.
    """
    tree = cKDTree(features[reference_rows])
    n_ref = len(reference_rows)
    residual = np.empty(targets.shape, dtype=np.float32)
    spread = np.empty(targets.shape, dtype=np.float32)
    for start in range(0, len(features), chunk):
        stop = min(start + chunk, len(features))
        _, idx = tree.query(features[start:stop], k=min(k + 1, n_ref), eps=eps, workers=-1)
        idx = idx.reshape(stop - start, -1)
        own = reference_rows[np.minimum(idx, n_ref - 1)] == np.arange(start, stop)[:, None]
        # drop the row itself when it is in the reference set, else the farthest neighbour
        keep = max(idx.shape[1] - 1, 1)
        order = np.argsort(own, axis=1, kind="stable")[:, :keep]
        neighbours = targets[reference_rows[np.take_along_axis(idx, order, axis=1)]]
        predicted = np.median(neighbours, axis=1)
        residual[start:stop] = targets[start:stop] - predicted
        spread[start:stop] = np.median(np.abs(neighbours - predicted[:, None, :]), axis=1)
    return residual, spread
