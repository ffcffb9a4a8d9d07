"""Exact k-th nearest neighbour search in L2, on the device, inside jitted code.

PRDC (:mod:`policyfit.algos.prdc`) queries the dataset's ``(beta * s, a)`` pairs once per actor
step. A KD-tree cannot run under ``jax.jit``; this is a brute-force search over the whole table,
chunk by chunk in a ``lax.scan``, that is nonetheless EXACT (the same neighbour distance as
``scipy.spatial.cKDTree`` up to float32 rounding of that one distance):

1. Screening. For every chunk, ``d~(q, x) = |q|^2 - 2 q.x + |x|^2`` (one matmul at full float32
   precision) and a running list of the ``m`` smallest ``d~`` per query (``lax.top_k``, lowest
   index first among ties).
2. Re-ranking. The ``m`` candidates' squared distances are recomputed directly,
   ``sum_l (q_l - x_l)^2``; the k-th smallest (ties: lowest index) is the answer.
3. Certificate. The expansion's rounding error is at most
   ``bound(q) = 2 (D + 4) eps (|q| + max_x |x|)^2`` (``eps`` = float32 machine epsilon; the
   classic ``gamma_D`` bound on a length-``D`` dot product, doubled to also cover step 2's
   rounding). Every point outside the candidates has ``d~ >= d~_m``, so its distance is at least
   ``d~_m - bound``; when that exceeds the k-th re-ranked distance for every query of the batch,
   the answer is proven exact. Otherwise (near-ties within the rounding band: duplicated
   points, huge ``beta``) the whole batch is searched again with direct distances (``lax.cond``,
   paid only then); ``fallback`` reports it.

For ``k = 1`` (PRDC's setting everywhere) a cheaper single-pass screen runs first
(:func:`_band_pass`): per chunk a column ``min`` of ``d~`` (keys down the rows, so XLA
reduces across rows, vectorized over the queries: ``lax.top_k`` and ``argmin`` along a row are 3-8x
slower on a CPU), then the keys within ``bound`` of the running minimum, listed by their lowest
and highest row. The true nearest always lies in that band, so re-ranking the listed keys by
direct distance is exact whenever the list is complete (at most two per chunk, eight in all);
otherwise (many exact ties) the steps above run (``lax.cond``).
On a 2-core Xeon this is 2.4-2.6x faster than the top-m screen at its best chunk size
(``benchmarks/prdc_nn.py``, 1M keys).

The table is built once on the host (:func:`build_table`); it is a pytree of device arrays and
travels as a jit argument (PRDC keeps it in its sampler's data, not in the checkpointed state).

Example:
    >>> import numpy as np
    >>> table = build_table(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), chunk_size=2)
    >>> idx, dist2, fallback = nearest_neighbor(np.array([[0.9, 0.1], [0.0, 2.0]]), table)
    >>> idx.tolist(), np.round(np.asarray(dist2, np.float64), 4).tolist(), bool(fallback)
    ([1, 2], [0.02, 1.0], False)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def build_table(keys: Any, chunk_size: int = 8192, candidates: int = 16) -> dict[str, Any]:
    """The search table of ``keys`` ``[N, D]``: rows padded to whole chunks of ``chunk_size``.

    ``candidates`` is ``m``, the screening list length (at least ``k`` of the queries); the chunk
    size is raised to it when smaller. Padding rows have ``|x|^2 = inf`` (never screened in) and
    are masked in direct distances.
    """
    keys = np.asarray(keys, np.float32)
    if keys.ndim != 2 or len(keys) == 0:
        raise ValueError(f"keys must be a non-empty [N, D] array, got shape {keys.shape}")
    n, dim = keys.shape
    chunk = max(int(min(chunk_size, n)), int(candidates), 1)
    n_chunks = -(-n // chunk)
    padded = np.zeros((n_chunks * chunk, dim), np.float32)
    padded[:n] = keys
    sq = np.full(n_chunks * chunk, np.inf, np.float64)
    sq[:n] = np.sum(keys.astype(np.float64) ** 2, axis=1)
    max_norm = float(np.sqrt(sq[:n].max())) * (1.0 + 4 * EPS32)  # rounded up, never below
    return {
        "keys": jnp.asarray(padded.reshape(n_chunks, chunk, dim)),
        "sq_norms": jnp.asarray(sq.reshape(n_chunks, chunk), jnp.float32),
        "count": jnp.asarray(n, jnp.int32),
        "max_norm": jnp.asarray(max_norm, jnp.float32),
        "candidates": jnp.zeros((int(candidates), 0), jnp.float32),  # m, as a static shape
    }


def table_rows(table: dict[str, Any], idx: jnp.ndarray) -> jnp.ndarray:
    """The keys at global row indices ``idx`` (any shape) -> ``idx.shape + (D,)``."""
    keys = table["keys"]
    return jnp.take(keys.reshape(-1, keys.shape[-1]), idx, axis=0)


def _screen_distances(queries, q_sq, keys, sq_norms):
    dots = jnp.matmul(queries, keys.T, precision=jax.lax.Precision.HIGHEST)
    return q_sq[:, None] - 2.0 * dots + sq_norms[None, :]


def _direct_distances(queries, keys, valid):
    diff = queries[:, None, :] - keys[None, :, :]
    d2 = jnp.sum(diff * diff, axis=-1)
    return jnp.where(valid[None, :], d2, jnp.inf)


def _running_smallest(queries, table, m, distances):
    """The ``m`` smallest ``distances(queries, chunk...)`` over all chunks: ``(values, idx)``,
    ascending, lowest index first among equal values (earlier chunks come first in the merge)."""
    n_chunks, chunk, _ = table["keys"].shape
    batch = queries.shape[0]

    def body(carry, xs):
        best_v, best_i = carry
        keys, sq_norms, c = xs
        base = c * chunk
        d = distances(keys, sq_norms, base + jnp.arange(chunk, dtype=jnp.int32))
        neg, pos = jax.lax.top_k(-d, m)
        vals = jnp.concatenate([best_v, -neg], axis=1)
        idx = jnp.concatenate([best_i, pos.astype(jnp.int32) + base], axis=1)
        neg, order = jax.lax.top_k(-vals, m)
        return (-neg, jnp.take_along_axis(idx, order, axis=1)), None

    init = (jnp.full((batch, m), jnp.inf, jnp.float32), jnp.zeros((batch, m), jnp.int32))
    xs = (table["keys"], table["sq_norms"], jnp.arange(n_chunks, dtype=jnp.int32))
    (vals, idx), _ = jax.lax.scan(body, init, xs)
    return vals, idx


def _error_bound(queries: jnp.ndarray, q_sq: jnp.ndarray, table: dict[str, Any]) -> jnp.ndarray:
    """Per query: the bound on ``|d~ - d|`` (expansion and direct distance; module docstring)."""
    dim = queries.shape[1]
    return 2.0 * (dim + 4) * EPS32 * (jnp.sqrt(q_sq) + table["max_norm"]) ** 2


def _band_pass(queries: jnp.ndarray, band: jnp.ndarray, table: dict[str, Any], slots: int = 8):
    """One scan for ``k = 1``: ``(rows [B, slots], count [B], complete [B])``.

    ``d~`` here omits ``|q|^2`` (a per-query constant). Each chunk is searched against the running
    minimum of ``d~`` so far, never below the final one: its keys within ``band`` of it are
    counted and the lowest and highest such row kept in ``rows`` (all of them when a chunk has at
    most two). When the minimum drops by more than ``band`` every earlier key falls outside the
    new band and the list starts again (``reset``). So every key within ``band`` of the final
    minimum is in ``rows[:count]`` when ``complete`` (no chunk held more than two, and
    ``count <= slots``); the list may also hold keys that fell outside the band later.
    """
    n_chunks, chunk, _ = table["keys"].shape
    scaled = -2.0 * queries.T  # exact: a power of two
    rows = jnp.arange(chunk, dtype=jnp.int32)[:, None]
    slot = jnp.arange(slots, dtype=jnp.int32)[None, :]

    def body(carry, xs):
        low, listed, count, complete = carry
        keys, sq_norms, c = xs
        d = sq_norms[:, None] + jnp.matmul(keys, scaled, precision=jax.lax.Precision.HIGHEST)
        new_low = jnp.minimum(low, jnp.min(d, axis=0))
        inside = d <= (new_low + band)[None, :]
        c_count = jnp.sum(inside, axis=0, dtype=jnp.int32)
        first = jnp.min(jnp.where(inside, rows, chunk), axis=0) + c * chunk
        last = jnp.max(jnp.where(inside, rows, -1), axis=0) + c * chunk
        reset = new_low + band < low
        count = jnp.where(reset, 0, count)
        complete = jnp.where(reset, True, complete)
        at = count[:, None]
        listed = jnp.where((slot == at) & (c_count[:, None] >= 1), first[:, None], listed)
        listed = jnp.where((slot == at + 1) & (c_count[:, None] >= 2), last[:, None], listed)
        count = count + c_count
        complete = complete & (c_count <= 2) & (count <= slots)
        return (new_low, listed, count, complete), None

    batch = queries.shape[0]
    init = (
        jnp.full((batch,), jnp.inf, jnp.float32),
        jnp.zeros((batch, slots), jnp.int32),
        jnp.zeros((batch,), jnp.int32),
        jnp.ones((batch,), bool),
    )
    xs = (table["keys"], table["sq_norms"], jnp.arange(n_chunks, dtype=jnp.int32))
    (_, listed, count, complete), _ = jax.lax.scan(body, init, xs)
    return listed, count, complete


def nearest_neighbor(
    queries: Any, table: dict[str, Any], k: int = 1
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The ``k``-th nearest row of ``table`` to each query ``[B, D]`` (``k=1``: the nearest).

    Returns ``(idx [B] int32, squared distance [B] float32, fallback)``; ``fallback`` is True
    when the certificate failed for some query and the batch was searched with direct distances.
    ``k`` as ``scipy.spatial.cKDTree.query(x, k=[k])`` (PRDC's official code): the k-th only.
    Pure and jit-able (``k`` static).
    """
    queries = jnp.asarray(queries, jnp.float32)
    m = table["candidates"].shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k={k} must be between 1 and the table's candidates={m}")
    q_sq = jnp.sum(queries * queries, axis=1)
    bound = _error_bound(queries, q_sq, table)
    if k > 1:
        return _nearest_top_m(queries, q_sq, bound, table, k)
    # k = 1: the band screen. bound = 2 e, e the expansion's error, so the true nearest y has
    # d~(y) <= d(y) + e <= d(x) + e <= d~(x) + bound for the screened minimum x: every key of a
    # band of bound (plus a margin) re-ranked by direct distance gives the exact nearest
    listed, count, complete = _band_pass(queries, 1.25 * bound, table)
    slots = listed.shape[1]
    diff = queries[:, None, :] - table_rows(table, listed)
    direct = jnp.sum(diff * diff, axis=-1)
    direct = jnp.where(jnp.arange(slots)[None, :] < count[:, None], direct, jnp.inf)
    direct, listed = jax.lax.sort((direct, listed), dimension=1, num_keys=2)
    return jax.lax.cond(
        jnp.all(complete),
        lambda _: (listed[:, 0], direct[:, 0], jnp.asarray(False)),
        lambda _: _nearest_top_m(queries, q_sq, bound, table, k),
        operand=None,
    )


def _nearest_top_m(queries, q_sq, bound, table, k):
    """Steps 1-3 of the module docstring: the top-``m`` screen, re-ranking and certificate."""
    m = table["candidates"].shape[0]
    count = table["count"]

    # 1. screening by the expansion
    approx, cand = _running_smallest(
        queries, table, m, lambda keys, sq, _: _screen_distances(queries, q_sq, keys, sq)
    )
    # 2. exact re-ranking of the m candidates (lexicographic on (distance, index))
    diff = queries[:, None, :] - table_rows(table, cand)
    exact = jnp.where(cand < count, jnp.sum(diff * diff, axis=-1), jnp.inf)
    exact, cand = jax.lax.sort((exact, cand), dimension=1, num_keys=2)
    best_d, best_i = exact[:, k - 1], cand[:, k - 1]
    # 3. certificate: nothing outside the candidates can be nearer than the k-th re-ranked one
    certified = approx[:, m - 1] - bound > best_d

    def direct(_):
        vals, idx = _running_smallest(
            queries, table, k, lambda keys, _, rows: _direct_distances(queries, keys, rows < count)
        )
        return idx[:, k - 1], vals[:, k - 1]

    idx, dist2 = jax.lax.cond(jnp.all(certified), lambda _: (best_i, best_d), direct, operand=None)
    return idx, dist2, ~jnp.all(certified)
