"""Nearest-neighbour measures: action consistency, transition diversity, local dynamics residuals.

Belkhale et al. 2023, "Data Quality in Imitation Learning" (Sec. 4), name two properties of data
that decide how well a learned policy does: *action divergence* (how much the actions taken in the
same state disagree; high divergence makes imitation average incompatible behaviours) and
*transition diversity* (how varied the outcomes of similar (state, action) pairs are). Both are
defined on exact states; with continuous states we estimate them from k nearest neighbours in the
standardized space, and express each as a ratio to the same spread between random pairs, so that
0 means "neighbours agree exactly" and about 1 means "neighbours are no more alike than strangers".

Neighbours from the same episode are skipped: consecutive steps of one smooth trajectory are
trivially alike and would make every dataset look consistent. Neighbours are searched among the
top principal components (at most 16 here, 8 for the per-transition residuals) with (1 + 0.5)-approximate k-d tree queries:
exact search in 20+ dimensions costs minutes on a million rows, and the ratios barely move.

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

from policyfit.common.checks import check_int

MAX_TREE_DIMS = 8  # k-d trees degrade beyond ~10 dimensions: search on the top principal components


def standardize(
    x: np.ndarray, floor: float = 1e-6, sample: int = 200_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - mean) / std`` per column (float32), with ``std`` floored so constant columns give 0.

    Mean and std come from an evenly strided ``sample`` of rows when there are more: a scale only
    needs two or three digits, and a million-row float64 pass is a good part of the time budget.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    est = x[:: max(1, len(x) // sample)]
    mean = est.mean(axis=0, dtype=np.float64)
    std = np.maximum(est.std(axis=0, dtype=np.float64), floor)
    z = x - mean.astype(np.float32)
    z /= std.astype(np.float32)
    return z, mean, std


def principal_projection(x: np.ndarray, max_dims: int = MAX_TREE_DIMS) -> np.ndarray:
    """``[D, d]`` projection onto the top ``d <= max_dims`` principal components of ``x`` (or identity)."""
    dim = x.shape[1]
    if dim <= max_dims:
        return np.eye(dim, dtype=np.float32)
    x = x[:: max(1, len(x) // 10_000)]  # 10k rows pin down a covariance matrix
    centered = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    # einsum, not BLAS: a tiny product, and BLAS threads spin badly on a loaded machine
    _, vectors = np.linalg.eigh(np.einsum("ij,ik->jk", centered, centered))  # ascending
    return np.ascontiguousarray(vectors[:, ::-1][:, :max_dims]).astype(np.float32)


def _neighbours_other_episode(
    features: np.ndarray, groups: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[n, k]`` of each row's k nearest rows from other episodes, and a validity mask."""
    n = len(features)
    k_query = min(n, 2 * k + 1 if groups is not None else k + 1)
    features = features @ principal_projection(features, max_dims=16)
    tree = cKDTree(features)
    _, idx = tree.query(features, k=k_query, eps=0.5, workers=-1)
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
    k = check_int(k, "k", minimum=1)
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


def knn_indices(
    features: np.ndarray,
    query_rows: np.ndarray,
    reference_rows: np.ndarray,
    k: int = 8,
    eps: float = 1.0,
    chunk: int = 100_000,
) -> np.ndarray:
    """``[len(query_rows), k]`` indices of the k nearest ``reference_rows`` of each query row.

    A row is never its own neighbour. ``eps`` allows (1 + eps)-approximate neighbours: plenty for
    flagging outliers, and several times faster in 8-12 dimensions.
    """
    k = check_int(k, "k", minimum=1)
    tree = cKDTree(features[reference_rows])
    n_ref = len(reference_rows)
    k_query = min(k + 1, n_ref)
    keep = max(k_query - 1, 1)
    out = np.empty((len(query_rows), keep), dtype=np.int64)
    for start in range(0, len(query_rows), chunk):
        rows = query_rows[start : start + chunk]
        _, idx = tree.query(features[rows], k=k_query, eps=eps, workers=-1)
        idx = reference_rows[np.minimum(idx.reshape(len(rows), -1), n_ref - 1)]
        # drop the row itself when it is in the reference set, else the farthest neighbour
        order = np.argsort(idx == rows[:, None], axis=1, kind="stable")[:, :keep]
        out[start : start + chunk] = np.take_along_axis(idx, order, axis=1)
    return out


def temporal_indices(
    episode_starts: np.ndarray, episode_ends: np.ndarray, n: int, offsets=(-2, -1, 1, 2)
) -> tuple[np.ndarray, np.ndarray]:
    """``[N, len(offsets)]`` neighbours of every transition in time, inside its own episode.

    Near an episode's start or end a missing neighbour ``t + o`` is replaced by one on the other
    side (``t - 2`` -> ``t + 3``, ...). Returns the indices and a mask of rows whose episode is long
    enough (``> 2 * max|offset|``) for that to work.
    """
    lengths = episode_ends - episode_starts + 1
    start = np.repeat(episode_starts, lengths)
    end = np.repeat(episode_ends, lengths)
    t = np.arange(n)
    span = 2 * max(abs(o) for o in offsets) + 1
    cols = []
    for o in offsets:
        j = t + o
        swap = t + (o + span if o < 0 else o - span)
        cols.append(np.where((j >= start) & (j <= end), j, np.clip(swap, start, end)))
    return np.stack(cols, axis=1), (end - start + 1) >= span


def neighbour_residuals(
    targets: np.ndarray, rows: np.ndarray, neighbours: np.ndarray, chunk: int = 200_000
) -> tuple[np.ndarray, np.ndarray]:
    """Residual of ``targets[rows]`` from a robust average of their ``neighbours`` rows, and spread.

    Returns ``(residual, spread)``, both ``[len(rows), T]``. The prediction is the trimmed mean of
    the neighbours (largest and smallest dropped; for four neighbours exactly their median), so one
    bad neighbour cannot drag it; ``spread`` is the mean absolute deviation of the neighbours from
    it, largest dropped — how much the neighbours themselves disagree (large in sparse or genuinely
    noisy regions, where a large residual means less). Min/max/sum instead of a median: a
    ``partition`` over ``[N, k, T]`` costs several times more on a million rows.
    """
    m = neighbours.shape[1]
    residual = np.empty((len(rows), targets.shape[1]), dtype=np.float32)
    spread = np.empty_like(residual)
    for start in range(0, len(rows), chunk):
        stop = start + chunk
        # one contiguous [chunk, T] array per neighbour: elementwise ops beat reductions over axis 1
        nb = [targets[neighbours[start:stop, j]] for j in range(m)]
        total, hi, lo = nb[0].copy(), nb[0].copy(), nb[0].copy()
        for y in nb[1:]:
            total += y
            np.maximum(hi, y, out=hi)
            np.minimum(lo, y, out=lo)
        predicted = (total - hi - lo) / (m - 2) if m >= 3 else total / m
        dev_total = np.zeros_like(predicted)
        dev_max = np.zeros_like(predicted)
        for y in nb:
            dev = np.abs(y - predicted)
            dev_total += dev
            np.maximum(dev_max, dev, out=dev_max)
        spread[start:stop] = (dev_total - dev_max) / (m - 1) if m >= 2 else dev_total
        residual[start:stop] = targets[rows[start:stop]] - predicted
    return residual, spread
