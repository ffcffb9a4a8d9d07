"""A/B of :func:`policyfit.nn.modules.flat_dot_general` (2-D projections) in one process.

The networks in ``policyfit.nn`` compute every Dense layer as one 2-D matmul
(``nn.modules.FLAT_MATMULS = True``, the default); ``False`` gives flax's own ``dot_general``,
whose kernel gradient on a 3-D input contracts two axes at once. Both programs are compiled, then
timed in alternated rounds of ``--chunk`` fused updates (the trainer's ``make_train_chunk``), so
machine noise hits both alike. Algorithms: CQL (critics on ``[3N, B, D]`` proposals) and the
Decision Transformer (``[B, 3K, C]`` tokens) at their defaults, on ``hopper-medium``.

Usage: ``python benchmarks/flat_matmuls.py [--algos cql,dt] [--rounds 3] [--chunk 20]``; writes
``benchmarks/results/flat_matmuls_<cpu kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp

import policyfit.nn.modules as modules
from common import RESULTS_DIR, cpu_kind, git_commit, machine, write_result, write_text
from policyfit.algos.base import DatasetSpec
from policyfit.algos.policy import build_algorithm
from policyfit.envs.datasets import load_dataset
from policyfit.training.trainer import make_train_chunk

BATCH = {"cql": 256, "dt": 64}


def compiled(name: str, ds, spec, flat: bool, chunk: int):
    """A warmed-up fused program of ``chunk`` updates, traced with ``FLAT_MATMULS = flat``."""
    modules.FLAT_MATMULS = flat
    try:
        algo = build_algorithm(name, {}, spec)
        state = jax.jit(algo.init, static_argnums=0)(spec, jax.random.PRNGKey(0))
        sampler = algo.make_sampler(ds, spec)
        run = make_train_chunk(algo, sampler, jax.random.PRNGKey(1), BATCH[name])
        state, _ = run(state, sampler.data, jnp.int32(0), chunk)  # compile + warm up
        jax.block_until_ready(state)
    finally:
        modules.FLAT_MATMULS = True
    return run, state, sampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", default="cql,dt")
    ap.add_argument("--dataset", default="hopper-medium")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=20)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    spec = DatasetSpec.from_dataset(ds)
    rows = []
    for name in args.algos.split(","):
        progs = {flat: compiled(name, ds, spec, flat, args.chunk) for flat in (True, False)}
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for flat, (run, state, sampler) in progs.items():
                t = time.perf_counter()
                jax.block_until_ready(run(state, sampler.data, jnp.int32(args.chunk), args.chunk))
                rates[flat].append(args.chunk / (time.perf_counter() - t))
        row = {
            "algorithm": name,
            "flat_updates_per_second": rates[True],
            "plain_updates_per_second": rates[False],
            "speedup_best": max(rates[True]) / max(rates[False]),
        }
        rows.append(row)
        print(row, flush=True)
    kind = cpu_kind()
    name = f"flat_matmuls_{kind}"
    payload = {
        "dataset": args.dataset,
        "rounds": args.rounds,
        "chunk": args.chunk,
        "batch": {a: BATCH[a] for a in args.algos.split(",")},
        "machine": machine(),
        "versions": {"jax": jax.__version__},
        "commit": git_commit(),
        "load_average": list(os.getloadavg()),
        "rows": rows,
    }
    write_result(name, payload)
    lines = [
        f"# 2-D projections (`flat_dot_general`) on/off, one process ({kind})",
        "",
        f"`{args.dataset}`, default configs, {args.rounds} alternated rounds of {args.chunk} fused "
        f"updates each; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}. Updates/s per round.",
        "",
        "| algorithm | 2-D projections | flax dot_general | best / best |",
        "|---|---|---|---|",
    ]
    for r in rows:
        flat = ", ".join(f"{x:.2f}" for x in r["flat_updates_per_second"])
        plain = ", ".join(f"{x:.2f}" for x in r["plain_updates_per_second"])
        lines.append(f"| {r['algorithm']} | {flat} | {plain} | {r['speedup_best']:.2f}x |")
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
