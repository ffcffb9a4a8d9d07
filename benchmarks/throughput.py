"""Updates per second of every algorithm, policyfit vs d3rlpy, side by side in one run.

Same data (a Hopper-v5-shaped dataset: obs 11, act 3, 100k transitions of real random rollouts),
same widths (256 units; the algorithm's number of layers: 2 for BC/TD3+BC/IQL, 3 for CQL, AWAC and
ReBRAC), batch 256, float32, CPU. For each algorithm the two libraries run back to back, and the
pair is repeated ``--rounds`` times (the machine is shared; the best round of each is reported).

* policyfit: the trainer's fused program (``lax.scan`` over ``--fuse`` updates, batches sampled on
  the device) after one warm-up call that compiles it;
* d3rlpy: ``algo.fit`` (its own replay sampling and update loop, no logging/saving) after a warm-up
  fit, in its own virtual environment (``--d3rlpy-python``; it pins gymnasium 1.0.0).

Also reports, per algorithm, the **shape-matched limit** (:mod:`gemm_limit`, issue 19): the
update's own matrix products, read off its compiled program and timed alone in XLA and in PyTorch
on this machine, the faster of the two summed over the update. ``% of limit`` = limit time /
measured update time: how close the whole update (element-wise work, Adam and the sampling
included) comes to its matrix products alone at the best speed either library gets for those
shapes. And, as before, the achieved GFLOP/s (XLA's cost analysis / time) against this CPU's
float32 matmul peak (2048x2048 ``jnp.dot``).

Results are kept per CPU kind: ``--out`` defaults to ``throughput_<cpu kind>`` (``intel-xeon``,
``amd-epyc``, ...; :func:`common.cpu_kind`), so a run on one machine never overwrites another's.

    python benchmarks/throughput.py [--algos iql,td3bc,cql] [--updates 2000] [--rounds 2] [--no-limit]
    # d3rlpy venv: make bench-venv  (torch==2.13.0 d3rlpy mujoco imageio in benchmarks/.venv-d3rlpy)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH = 256
BATCH = 256
LAYERS = {"bc": 2, "td3bc": 2, "iql": 2, "cql": 3, "awac": 3, "rebrac": 3}


# --------------------------------------------------------------------------- shared data
def make_data(path: Path, n: int = 100_000, seed: int = 0) -> None:
    """Random-policy Hopper-v5 rollouts (real dynamics; content does not change update cost)."""
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    env.action_space.seed(seed)
    rows = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "next_observations",
        )
    }
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        a = env.action_space.sample()
        nxt, r, term, trunc, _ = env.step(a)
        for k, v in zip(rows, (obs, a, r, term, trunc, nxt), strict=True):
            rows[k].append(v)
        obs = env.reset()[0] if (term or trunc) else nxt
    rows["timeouts"][-1] = True
    np.savez(path, **{k: np.asarray(v) for k, v in rows.items()})


# --------------------------------------------------------------------------- d3rlpy worker
def d3rlpy_worker(data_path: str, algo: str, updates: int, threads: int) -> dict:
    """Runs inside the d3rlpy environment; prints one JSON line."""
    import d3rlpy
    import torch

    torch.set_num_threads(threads)

    data = np.load(data_path)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"],
        rewards=data["rewards"],
        terminals=data["terminals"].astype(np.float32),
        timeouts=data["timeouts"].astype(np.float32),
    )
    enc = d3rlpy.models.VectorEncoderFactory(hidden_units=[WIDTH] * LAYERS[algo])
    common = dict(batch_size=BATCH)
    nets = dict(actor_encoder_factory=enc, critic_encoder_factory=enc)
    make = {
        "bc": lambda: d3rlpy.algos.BCConfig(encoder_factory=enc, **common),
        "td3bc": lambda: d3rlpy.algos.TD3PlusBCConfig(**nets, **common),
        "iql": lambda: d3rlpy.algos.IQLConfig(**nets, value_encoder_factory=enc, **common),
        "cql": lambda: d3rlpy.algos.CQLConfig(**nets, **common),
        "awac": lambda: d3rlpy.algos.AWACConfig(**nets, **common),
        "rebrac": lambda: d3rlpy.algos.ReBRACConfig(**nets, **common),
    }[algo]
    learner = make().create(device="cpu:0")
    fit = dict(
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    learner.fit(dataset, n_steps=50, n_steps_per_epoch=50, **fit)  # builds networks, warms up
    t0 = time.perf_counter()
    learner.fit(dataset, n_steps=updates, n_steps_per_epoch=updates, **fit)
    seconds = time.perf_counter() - t0
    return {
        "updates_per_second": updates / seconds,
        "seconds": seconds,
        "updates": updates,
        "torch": torch.__version__,
        "d3rlpy": d3rlpy.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def run_d3rlpy(python: str, data_path: Path, algo: str, updates: int, threads: int) -> dict:
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--d3rlpy-worker",
        str(data_path),
        "--algos",
        algo,
        "--updates",
        str(updates),
        "--torch-threads",
        str(threads),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- policyfit side
def matmul_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def hopper_dataset(path: Path | None = None):
    """The benchmark's dataset (:func:`make_data`, cached under ``benchmarks/work/``)."""
    from policyfit.data import Dataset

    path = path or HERE / "work" / "throughput" / "hopper-random-100k.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_data(path)
    raw = np.load(path)
    return Dataset(
        **{k: raw[k] for k in raw.files},
        metadata={"env_id": "Hopper-v5"},
        source="hopper-random-100k",
    )


def build(ds, algo: str):
    """(learner, initial state, sampler) with the benchmark's widths and batch."""
    import jax

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.registry import get_algorithm
    from policyfit.data.sampler import TransitionSampler

    cls = get_algorithm(algo)
    config = cls.Config.from_dict({"hidden_dims": (WIDTH,) * LAYERS[algo], "batch_size": BATCH})
    learner = cls(config)
    spec = DatasetSpec.from_dataset(ds)
    state = jax.jit(learner.init, static_argnums=0)(spec, jax.random.PRNGKey(0))
    return learner, state, TransitionSampler(ds)


def compiled_update(learner, state, sampler):
    """One update (one batch), compiled alone: its cost analysis and HLO text."""
    import jax

    batch = sampler.sample(sampler.data, jax.random.PRNGKey(2), BATCH)
    return jax.jit(learner.update).lower(state, batch, jax.random.PRNGKey(3)).compile()


def compiled_update_text(ds, algo: str) -> str:
    return compiled_update(*build(ds, algo)).as_text()


def policyfit_throughput(ds, algo: str, updates: int, fuse: int) -> dict:
    import jax
    import jax.numpy as jnp

    from policyfit.training.trainer import make_train_chunk

    learner, state, sampler = build(ds, algo)
    chunk = make_train_chunk(learner, sampler, jax.random.PRNGKey(1), BATCH)
    # FLOPs of ONE update (XLA's cost analysis counts a scan body once, not per iteration).
    one = compiled_update(learner, state, sampler)
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops_per_update = float(cost.get("flops", 0.0)) if cost else None
    t0 = time.perf_counter()
    chunk.lower(state, sampler.data, jnp.int32(0), fuse).compile()
    compile_seconds = time.perf_counter() - t0
    state, _ = chunk(state, sampler.data, jnp.int32(0), fuse)  # warm-up
    jax.block_until_ready(state)
    done, t0 = 0, time.perf_counter()
    while done < updates:
        state, _ = chunk(state, sampler.data, jnp.int32(fuse + done), fuse)
        done += fuse
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    rate = done / seconds
    return {
        "updates_per_second": rate,
        "seconds": seconds,
        "updates": done,
        "compile_seconds": compile_seconds,
        "flops_per_update": flops_per_update,
        "gflops_per_second": rate * flops_per_update / 1e9 if flops_per_update else None,
        # the optimized HLO of that one update: gemm_limit reads its products from it
        "hlo_text": one.as_text(),
    }


def _gemm_cell(g: dict) -> str:
    torch = "—" if g["torch_gflops"] is None else f"{g['torch_gflops']:.0f}"
    return f"{g['count']:g}× {g['gemm']}: {g['xla_gflops']:.0f} / {torch}"


def write_all(args: argparse.Namespace, peak: float, results: dict) -> Path:
    """Write results JSON and markdown (after every algorithm, so a cut run keeps its part)."""
    from common import write_result, write_text

    path = write_result(
        args.out,
        {
            "setup": {
                "dataset": "Hopper-v5 random rollouts, 100k transitions (obs 11, act 3)",
                "width": WIDTH,
                "batch_size": BATCH,
                "layers": LAYERS,
                "fuse": args.fuse,
                "updates_timed": args.updates,
                "rounds": args.rounds,
                "note": "shared 2-core machine; best round of each library reported",
            },
            "matmul_peak_gflops": peak,
            "load_average_end": os.getloadavg(),
            "results": results,
        },
    )
    lines = [
        f"# Updates per second, width {WIDTH}, batch {BATCH}, CPU (best of {args.rounds} rounds)",
        "",
        f"float32 matmul peak: {peak:.1f} GFLOP/s; load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared 2-core machine)",
        "",
        "| algorithm | policyfit upd/s | d3rlpy upd/s | ratio | limit upd/s | % of limit "
        "| policyfit GFLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, r in results.items():
        d3 = r["d3rlpy"] or {}
        ratio = r["speedup_vs_d3rlpy"]
        lines.append(
            f"| {algo} | {r['policyfit']['updates_per_second']:.0f} | "
            f"{d3.get('updates_per_second', float('nan')):.0f} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} | "
            + (
                f"{lim['limit_updates_per_second']:.0f} | {100 * r['fraction_of_limit']:.0f}% | "
                if (lim := r.get("limit"))
                else "— | — | "
            )
            + f"{r['policyfit']['gflops_per_second'] or 0:.1f} | "
            f"{100 * r['fraction_of_matmul_peak']:.0f}% |"
        )
    limits = {a: r["limit"] for a, r in results.items() if r.get("limit")}
    if limits:
        lines += [
            "",
            "Limit: the update's matrix products (optimized HLO) timed alone, the faster of XLA and "
            "PyTorch per shape (best of 1 and 2 torch threads); a dot in one branch of a two-way "
            "`cond` (TD3's delayed actor) counts 1/2. Per shape, GFLOP/s XLA / PyTorch:",
            "",
        ]
        for algo, lim in limits.items():
            shapes = "; ".join(_gemm_cell(g) for g in lim["gemms"][:6])
            lines.append(
                f"- **{algo}**: {lim['gemm_flops_per_update'] / 1e9:.2f} GFLOP of matrix products "
                f"per update; limit {1e3 * lim['limit_seconds_per_update']:.2f} ms "
                f"(XLA alone {1e3 * lim['xla_only_seconds']:.2f} ms"
                + (
                    f", PyTorch alone {1e3 * lim['torch_only_seconds']:.2f} ms"
                    if lim["torch_only_seconds"]
                    else ""
                )
                + f"). Largest: {shapes}"
            )
    write_text(HERE / "results" / f"{args.out}.md", "\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bc,td3bc,iql,cql,awac,rebrac")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--fuse", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--d3rlpy-python", default=str(HERE / ".venv-d3rlpy" / "bin" / "python"))
    parser.add_argument("--d3rlpy-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--torch-threads",
        default="1,2",
        help="d3rlpy is run with each of these torch thread counts; its best is reported",
    )
    parser.add_argument("--out", default=None, help="results name (default: throughput_<cpu kind>)")
    parser.add_argument(
        "--no-limit", action="store_true", help="skip the shape-matched limit (gemm_limit.py)"
    )
    args = parser.parse_args()
    algos = args.algos.split(",")

    if args.d3rlpy_worker:
        print(
            json.dumps(
                d3rlpy_worker(args.d3rlpy_worker, algos[0], args.updates, int(args.torch_threads))
            )
        )
        return

    sys.path.insert(0, str(HERE))
    from gemm_limit import shape_matched_limit

    from common import cpu_kind

    args.out = args.out or f"throughput_{cpu_kind()}"
    data_path = HERE / "work" / "throughput" / "hopper-random-100k.npz"
    ds = hopper_dataset(data_path)
    have_d3rlpy = Path(args.d3rlpy_python).exists()
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak (jax, 2048^2): {peak:.1f} GFLOP/s; load average {os.getloadavg()}")

    results = {}
    for algo in algos:
        rounds_pf, rounds_d3 = [], []
        for _ in range(args.rounds):
            rounds_pf.append(policyfit_throughput(ds, algo, args.updates, args.fuse))
            if have_d3rlpy:
                for threads in (int(t) for t in args.torch_threads.split(",")):
                    rounds_d3.append(
                        run_d3rlpy(
                            args.d3rlpy_python,
                            data_path,
                            algo,
                            max(200, args.updates // 4),
                            threads,
                        )
                    )
        best_pf = max(rounds_pf, key=lambda r: r["updates_per_second"])
        ok_d3 = [r for r in rounds_d3 if "updates_per_second" in r]
        best_d3 = (
            max(ok_d3, key=lambda r: r["updates_per_second"])
            if ok_d3
            else (rounds_d3[0] if rounds_d3 else None)
        )
        ratio = best_pf["updates_per_second"] / best_d3["updates_per_second"] if ok_d3 else None
        limit = (
            None
            if args.no_limit
            else shape_matched_limit(rounds_pf[0]["hlo_text"], args.d3rlpy_python)
        )
        for r in rounds_pf:  # the HLO text is an input of the limit, not a result
            r.pop("hlo_text", None)
        results[algo] = {
            "limit": limit,
            "fraction_of_limit": (
                limit["limit_seconds_per_update"] * best_pf["updates_per_second"] if limit else None
            ),
            "policyfit": best_pf,
            "d3rlpy": best_d3,
            "speedup_vs_d3rlpy": ratio,
            "policyfit_rounds": [r["updates_per_second"] for r in rounds_pf],
            "d3rlpy_rounds": [r.get("updates_per_second") for r in rounds_d3],
            "fraction_of_matmul_peak": (best_pf["gflops_per_second"] or 0.0) / peak,
        }
        d3 = f"{best_d3['updates_per_second']:8.0f}" if ok_d3 else "     n/a"
        print(
            f"{algo:7s} policyfit {best_pf['updates_per_second']:8.0f} upd/s  d3rlpy {d3} upd/s  "
            f"ratio {ratio if ratio is None else round(ratio, 2)}  "
            f"{best_pf['gflops_per_second'] or 0:.1f} GFLOP/s ({100 * results[algo]['fraction_of_matmul_peak']:.0f}% of peak)"
            + (
                f"; limit {limit['limit_updates_per_second']:.0f} upd/s "
                f"({100 * results[algo]['fraction_of_limit']:.0f}% of it)"
                if limit
                else ""
            ),
            flush=True,
        )
        write_all(args, peak, results)
    print(f"wrote {write_all(args, peak, results)}")


if __name__ == "__main__":
    main()
