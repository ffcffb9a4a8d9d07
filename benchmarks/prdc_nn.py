"""Cost of PRDC's exact nearest-neighbour query per actor update, on real suite data.

Keys: PRDC's own search table for a suite dataset (default ``halfcheetah-medium``, 1M rows of
``2 * normalized s (17) + unit a (6)``, built by ``PRDC.make_sampler``). Queries: ``B = 256``
dataset states ``s`` with two kinds of ``pi(s)``:

* ``fresh actor``: a newly initialized actor (outputs near 0, far from the data's actions): the
  first actor steps of every run;
* ``trained actor``: the data's own action plus N(0, 0.1) noise: an actor close to the data, as
  late in training; ``half-trained actor``: N(0, 0.5) noise, in between;
* ``saturated actor``: actions at random corners of the ``[-1, 1]`` box, where halfcheetah's
  ``alpha = 40`` actor goes (its Q term dominates the BC term).

Compared, each jitted, seconds per query batch (best of ``--repeats``):

* ``kdtree``: ``jax.pure_callback`` to ``scipy.spatial.cKDTree.query`` (tree built once, on the
  host, all cores), what the official code does;
* ``kdtree + own-pair bound``: the same tree, pruned by ``|pi(s) - a|`` (the batch's own pair is
  in the table, so the nearest is no farther; :func:`kdtree_nearest_within`), measured as an
  alternative (PRDC does not use it: it did not pay);
* ``device``: :func:`policyfit.algos.nearest.nearest_neighbor` (chunked brute force, certified
  exact), the accelerator path; for ``k = 1`` its band screen, and beside it the top-``m``
  screen that ``k > 1`` takes (``k = 1`` took it too before session 14);
* ``hybrid``: PRDC's CPU default (``search="auto"``): per batch, the KD-tree when the mean
  ``|pi(s) - a|`` is at most ``search_switch``, else the device search (timed through
  ``PRDC.nearest_actions``; the path it took is in the row).

All answers are checked to give the same distances. Also: one TD3+BC update (batch 256, 2x256)
on the same machine, for the "<= 1.5x slower than TD3+BC" goal (PRDC's search runs every
``policy_freq = 2`` updates, so PRDC per update ~ TD3+BC + search / 2).

Usage: ``python benchmarks/prdc_nn.py [--dataset halfcheetah-medium] [--repeats 3]``; writes
``benchmarks/results/prdc_nn_<cpu-kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy

from common import RESULTS_DIR, cpu_kind, git_commit, machine, write_result, write_text
from policyfit.algos import nearest
from policyfit.algos.base import DatasetSpec
from policyfit.algos.nearest import nearest_neighbor
from policyfit.algos.prdc import PRDC, PRDCConfig
from policyfit.algos.td3bc import TD3BC
from policyfit.envs.datasets import load_dataset


def kdtree_nearest_within(
    tree: Any, queries: np.ndarray, bound: np.ndarray, groups: int = 8
) -> np.ndarray:
    """Exact nearest neighbours (``k = 1``) of ``queries`` in a ``cKDTree``, given an upper bound
    on each query's nearest distance (a point known to lie within it).

    scipy's ``distance_upper_bound`` prunes every node farther than the bound, which is what
    makes the search affordable when queries lie far from the data (a young actor's
    ``(beta s, pi(s))``): the queries are sorted by bound and split into ``groups``, each queried
    in one call (all cores) with its largest bound, widened by a relative ``1e-6`` so float
    rounding can never exclude the known point. A query with nothing found (impossible when the
    bound is valid) is searched again without one. Returns ``int32`` indices.

    """
    queries = np.asarray(queries, np.float64)
    bound = np.asarray(bound, np.float64)
    out = np.empty(len(queries), np.int64)
    order = np.argsort(bound, kind="stable")
    for part in np.array_split(order, min(groups, len(order))):
        if len(part) == 0:
            continue
        limit = float(bound[part].max()) * (1 + 1e-6) + 1e-9
        if not np.isfinite(limit):
            limit = np.inf
        _, out[part] = tree.query(queries[part], k=1, distance_upper_bound=limit, workers=-1)
    missing = out >= tree.n
    if missing.any():
        _, out[missing] = tree.query(queries[missing], k=1, workers=-1)
    return out.astype(np.int32)


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def training_phase(ds, spec, dataset: str, updates: int, block: int = 50) -> dict:
    """Seconds per update, by blocks, over the first ``updates`` updates of PRDC (the paper's
    settings for ``dataset``, the default search) and TD3+BC on the same batches' sizes: how long a
    young actor's far-from-data queries last in real training."""
    from policyfit.algos.registry import paper_settings

    settings = paper_settings("prdc", dataset)
    out = {"updates": updates, "block": block, "prdc_settings": settings}
    for name, algo in (("td3bc", TD3BC()), ("prdc", PRDC(PRDCConfig(**settings)))):
        sampler = algo.make_sampler(ds, spec) if name == "prdc" else None
        state = algo.init(spec, jax.random.PRNGKey(0))
        update = jax.jit(algo.update)
        key = jax.random.PRNGKey(1)
        rng = np.random.default_rng(2)
        times, ends, t = [], [], None
        for i in range(updates + 1):
            key, k1, k2 = jax.random.split(key, 3)
            if sampler is not None:
                batch = sampler.sample(sampler.data, k1, 256)
            else:
                rows = rng.integers(0, len(ds), 256)
                batch = {
                    "observations": jnp.asarray(ds.observations[rows]),
                    "actions": jnp.asarray(ds.actions[rows]),
                    "rewards": jnp.asarray(ds.rewards[rows]),
                    "terminals": jnp.asarray(ds.terminals[rows], jnp.float32),
                    "next_observations": jnp.asarray(ds.next_observations[rows]),
                }
            state, _ = update(state, batch, k2)
            if i == 0:  # compile
                jax.block_until_ready(state)
                t = time.perf_counter()
            elif i % block == 0:
                jax.block_until_ready(state)
                now = time.perf_counter()
                times.append((now - t) / block)
                ends.append(i)
                t = now
                print(name, i, f"{times[-1] * 1e3:.1f} ms/update", flush=True)
        out[name] = times
        out["block_ends"] = ends
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="halfcheetah-medium")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=PRDCConfig.search_chunk)
    ap.add_argument(
        "--top-m-chunk",
        type=int,
        default=8192,
        help="chunk of the top-m screen's row (its fastest here; the band screen's is ~1024)",
    )
    ap.add_argument(
        "--train-updates",
        type=int,
        default=300,
        help="also time the first N updates of real training (PRDC with the paper's settings for "
        "the dataset, search=kdtree, vs TD3+BC); 0 skips",
    )
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    spec = DatasetSpec.from_dataset(ds)
    prdc = PRDC(PRDCConfig(search="kdtree", search_chunk=args.chunk))
    sampler = prdc.make_sampler(ds, spec)
    table, tree = sampler.data["table"], sampler.tree
    n = int(table["count"])
    dim = int(table["keys"].shape[-1])
    obs_dim = dim - spec.action_dim
    keys = np.asarray(table["keys"]).reshape(-1, dim)[:n]
    rng = np.random.default_rng(1)
    rows = rng.integers(0, n, args.batch)
    own = keys[rows, obs_dim:]
    fresh = prdc.init(spec, jax.random.PRNGKey(0))["actor"]
    pis = {
        "fresh actor": np.asarray(
            prdc.actor.apply(fresh, jnp.asarray(keys[rows, :obs_dim] / prdc.config.beta))
        ),
        "trained actor": np.clip(own + rng.normal(0, 0.1, own.shape), -1, 1).astype(np.float32),
        "half-trained actor": np.clip(own + rng.normal(0, 0.5, own.shape), -1, 1).astype(
            np.float32
        ),
        "saturated actor": np.sign(rng.normal(size=own.shape)).astype(np.float32),
    }
    hybrid_prdc = PRDC(PRDCConfig(search="hybrid", search_chunk=args.chunk))
    hybrid_prdc._tree = tree  # the same host index
    hybrid = jax.jit(
        lambda o, p, a: hybrid_prdc.nearest_actions(o, p, table, a)[::2]  # (a^, device)
    )

    def host_plain(q):
        _, idx = tree.query(np.asarray(q, np.float64), k=1, workers=-1)
        return idx.astype(np.int32)

    shape = jax.ShapeDtypeStruct((args.batch,), jnp.int32)
    plain = jax.jit(lambda q: jax.pure_callback(host_plain, shape, q))
    bounded = jax.jit(
        lambda q, b: jax.pure_callback(
            lambda q, b: kdtree_nearest_within(tree, np.asarray(q), np.asarray(b)), shape, q, b
        )
    )
    device = jax.jit(nearest_neighbor, static_argnames="k")
    table_top_m = nearest.build_table(keys, args.top_m_chunk, prdc.config.search_candidates)

    @jax.jit
    def device_top_m(q, table):  # the screen k > 1 takes (k = 1's, before the band screen)
        q_sq = jnp.sum(q * q, axis=1)
        return nearest._nearest_top_m(q, q_sq, nearest._error_bound(q, q_sq, table), table, 1)

    rows_out = []
    for label, pi in pis.items():
        queries = np.hstack([keys[rows, :obs_dim], pi]).astype(np.float32)
        q_dev = jnp.asarray(queries)
        b_dev = jnp.asarray(np.linalg.norm(pi - own, axis=1))
        ref = None
        for method, fn in [
            ("kdtree (pure_callback)", lambda q=q_dev: plain(q)),
            ("kdtree + own-pair bound", lambda q=q_dev, b=b_dev: bounded(q, b)),
            (f"device brute force (chunk {args.chunk})", lambda q=q_dev: device(q, table)[0]),
            (
                f"device, top-m screen (k > 1; chunk {args.top_m_chunk})",
                lambda q=q_dev: device_top_m(q, table_top_m)[0],
            ),
        ]:
            seconds = best_time(fn, args.repeats)
            d = np.linalg.norm(keys[np.asarray(fn())].astype(np.float64) - queries, axis=1)
            ref = d if ref is None else ref
            rows_out.append(
                {
                    "queries": label,
                    "method": method,
                    "seconds": seconds,
                    "max_distance_error": float(np.abs(d - ref).max()),
                }
            )
            print(rows_out[-1], flush=True)
        obs_n = jnp.asarray(keys[rows, :obs_dim] / prdc.config.beta)
        args_h = (obs_n, jnp.asarray(pi), jnp.asarray(own))
        seconds = best_time(lambda a=args_h: hybrid(*a), args.repeats)
        path = "device" if bool(hybrid(*args_h)[1]) else "kdtree"
        rows_out.append(
            {
                "queries": label,
                "method": f"hybrid, search_switch {hybrid_prdc.config.search_switch:g} (took "
                f"{path}; own-pair distance {float(np.linalg.norm(pi - own, axis=1).mean()):.2f})",
                "seconds": seconds,
                "max_distance_error": None,
            }
        )
        print(rows_out[-1], flush=True)

    # one TD3+BC update on this machine (same batch size), for scale
    algo = TD3BC()
    state = algo.init(spec, jax.random.PRNGKey(0))
    batch = {
        "observations": jnp.asarray(ds.observations[rows]),
        "actions": jnp.asarray(ds.actions[rows]),
        "rewards": jnp.ones(args.batch),
        "terminals": jnp.zeros(args.batch),
        "next_observations": jnp.asarray(ds.next_observations[rows]),
    }
    update = jax.jit(algo.update)
    td3bc_s = best_time(lambda: update(state, batch, jax.random.PRNGKey(1))[1], args.repeats * 4)

    for r in rows_out:
        # PRDC per update ~ TD3+BC + search / policy_freq (the search runs on actor steps only)
        r["prdc_over_td3bc"] = (td3bc_s + r["seconds"] / 2) / td3bc_s
    training = (
        training_phase(ds, spec, args.dataset, args.train_updates) if args.train_updates else {}
    )
    kind = cpu_kind()
    name = f"prdc_nn_{kind}"
    payload = {
        "dataset": args.dataset,
        "n": n,
        "dim": dim,
        "machine": machine(),
        "versions": {"jax": jax.__version__, "scipy": scipy.__version__},
        "commit": git_commit(),
        "batch": args.batch,
        "repeats": args.repeats,
        "td3bc_update_seconds": td3bc_s,
        "load_average": list(os.getloadavg()),
        "rows": rows_out,
        "training": training,
    }
    write_result(name, payload)
    lines = [
        f"# PRDC nearest-neighbour query cost ({jax.devices()[0].device_kind}, {kind})",
        "",
        f"`{args.dataset}`: N = {n:,} keys of dim {dim}, batch {args.batch}, best of "
        f"{args.repeats}; load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}."
        f" One TD3+BC update: {td3bc_s * 1e3:.2f} ms. PRDC/TD3+BC = (TD3+BC + search / 2) / TD3+BC"
        " (the search runs on actor steps, every 2nd update).",
        "",
        "| queries | method | ms / query batch | max dist. error | PRDC/TD3+BC |",
        "|---|---|---|---|---|",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['queries']} | {r['method']} | {r['seconds'] * 1e3:.1f} | "
            f"{_e(r['max_distance_error'])} | {r['prdc_over_td3bc']:.1f}x |"
        )
    if training:
        lines += [
            "",
            f"Real training, the first {training['updates']} updates (batch 256, PRDC with the paper's "
            f"settings {training['prdc_settings']}, the default search), ms per update by blocks of "
            f"{training['block']}:",
            "",
            "| updates | " + " | ".join(str(b) for b in training["block_ends"]) + " |",
            "|---|" + "---|" * len(training["block_ends"]),
        ]
        for algo_name in ("td3bc", "prdc"):
            ms = " | ".join(f"{x * 1e3:.1f}" for x in training[algo_name])
            lines.append(f"| {algo_name} | {ms} |")
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def _e(x: float | None) -> str:
    return "(same path)" if x is None else f"{x:.1e}"


if __name__ == "__main__":
    main()
