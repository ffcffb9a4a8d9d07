"""Cost of PRDC's exact nearest-neighbour query per actor update, and the alternative.

Keys: ``N`` rows of ``17 + 6`` (hopper-sized ``[beta * s, a]``) with trajectory structure (random
walks, like consecutive states); queries: ``B = 256`` keys near dataset rows (states from the
data, actions perturbed, as ``pi(s)`` is). Compared, each jitted, seconds per query batch:

* ``device``: :func:`policyfit.algos.nearest.nearest_neighbor` (chunked brute force, certified
  exact), for a few ``search_chunk`` sizes;
* ``kdtree``: ``jax.pure_callback`` to ``scipy.spatial.cKDTree.query`` (tree built once, on the
  host, ``workers=-1``), what the official code does.

Both answers are checked to be the same distances. Also: one TD3+BC update (batch 256, 2x256) on
the same machine, for the "<= 1.5x slower than TD3+BC" goal (PRDC's search runs every
``policy_freq = 2`` updates, so PRDC per update ~ TD3+BC + search / 2).

Usage: ``python benchmarks/prdc_nn.py [--n 1000000] [--repeats 5]``; writes
``benchmarks/results/prdc_nn_<cpu-kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from common import RESULTS_DIR, cpu_kind, write_result, write_text
from policyfit.algos.base import DatasetSpec
from policyfit.algos.nearest import build_table, nearest_neighbor
from policyfit.algos.td3bc import TD3BC


def make_keys(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> np.ndarray:
    """Random-walk "episodes" of 1000 steps (normalized states times beta 2) and tanh actions."""
    rng = np.random.default_rng(seed)
    episode = 1000
    n_episodes = -(-n // episode)
    steps = rng.normal(scale=0.1, size=(n_episodes, episode, obs_dim)).astype(np.float32)
    steps[:, 0] = rng.normal(size=(n_episodes, obs_dim))
    obs = np.cumsum(steps, axis=1).reshape(-1, obs_dim)[:n]
    obs = (obs - obs.mean(0)) / (obs.std(0) + 1e-3)
    actions = np.tanh(rng.normal(size=(n, act_dim)))
    return np.hstack([2.0 * obs, actions]).astype(np.float32)


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunks", default="4096,16384,65536")
    args = ap.parse_args()
    obs_dim, act_dim = 17, 6
    keys = make_keys(args.n, obs_dim, act_dim)
    rng = np.random.default_rng(1)
    rows = rng.integers(0, args.n, args.batch)
    queries = keys[rows].copy()
    queries[:, obs_dim:] = np.clip(
        queries[:, obs_dim:] + rng.normal(0, 0.3, (args.batch, act_dim)), -1, 1
    )
    queries_dev = jnp.asarray(queries)

    tree_t = time.perf_counter()
    tree = cKDTree(keys)
    tree_build = time.perf_counter() - tree_t

    def host_query(q):
        _, idx = tree.query(np.asarray(q), k=1, workers=-1)
        return idx.astype(np.int32)

    @jax.jit
    def kdtree_search(q):
        return jax.pure_callback(host_query, jax.ShapeDtypeStruct((q.shape[0],), jnp.int32), q)

    ref_idx = np.asarray(kdtree_search(queries_dev))
    ref_d = np.linalg.norm(keys[ref_idx].astype(np.float64) - queries, axis=1)
    rows_out = [
        {
            "method": "kdtree (pure_callback)",
            "chunk": None,
            "seconds": best_time(lambda: kdtree_search(queries_dev), args.repeats),
            "setup_seconds": tree_build,
            "fallback": False,
            "max_distance_error": 0.0,
        }
    ]
    search = jax.jit(nearest_neighbor, static_argnames="k")
    for chunk in [int(c) for c in args.chunks.split(",")]:
        t = time.perf_counter()
        table = build_table(keys, chunk_size=chunk, candidates=16)
        setup = time.perf_counter() - t
        idx, _, fallback = search(queries_dev, table)
        d = np.linalg.norm(keys[np.asarray(idx)].astype(np.float64) - queries, axis=1)
        rows_out.append(
            {
                "method": "device brute force (exact)",
                "chunk": chunk,
                "seconds": best_time(lambda table=table: search(queries_dev, table), args.repeats),
                "setup_seconds": setup,
                "fallback": bool(fallback),
                "max_distance_error": float(np.abs(d - ref_d).max()),
            }
        )
        del table

    # one TD3+BC update on this machine (same batch size), for scale
    spec = DatasetSpec(observation_dim=obs_dim, action_dim=act_dim, num_transitions=args.n)
    algo = TD3BC()
    state = algo.init(spec, jax.random.PRNGKey(0))
    batch = {
        "observations": jnp.asarray(keys[rows, :obs_dim]),
        "actions": jnp.asarray(keys[rows, obs_dim:]),
        "rewards": jnp.ones(args.batch),
        "terminals": jnp.zeros(args.batch),
        "next_observations": jnp.asarray(keys[rows, :obs_dim]),
    }
    update = jax.jit(algo.update)
    td3bc_s = best_time(lambda: update(state, batch, jax.random.PRNGKey(1))[1], args.repeats * 4)

    for r in rows_out:
        # PRDC per update ~ TD3+BC + search / policy_freq (the search runs on actor steps only)
        r["prdc_over_td3bc"] = (td3bc_s + r["seconds"] / 2) / td3bc_s
    kind = cpu_kind()
    name = f"prdc_nn_{kind}"
    payload = {
        "n": args.n,
        "dim": obs_dim + act_dim,
        "batch": args.batch,
        "repeats": args.repeats,
        "td3bc_update_seconds": td3bc_s,
        "load_average": list(os.getloadavg()),
        "rows": rows_out,
    }
    write_result(name, payload)
    lines = [
        f"# PRDC nearest-neighbour query cost ({jax.devices()[0].device_kind}, {kind})",
        "",
        f"N = {args.n:,} keys of dim {obs_dim + act_dim}, batch {args.batch}, best of "
        f"{args.repeats}; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}."
        f" One TD3+BC update: {td3bc_s * 1e3:.2f} ms. PRDC/TD3+BC = (TD3+BC + search / 2) / TD3+BC"
        " (the search runs on actor steps, every 2nd update).",
        "",
        "| method | chunk | ms / query batch | setup s | fallback | max dist. error | PRDC/TD3+BC |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['method']} | {r['chunk'] or '-'} | {r['seconds'] * 1e3:.1f} | "
            f"{r['setup_seconds']:.1f} | {r['fallback']} | {r['max_distance_error']:.1e} | "
            f"{r['prdc_over_td3bc']:.1f}x |"
        )
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
