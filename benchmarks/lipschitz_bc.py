"""Lipschitz-constrained BC vs plain BC: clean return, return under Gaussian observation noise and
under the ``certify`` module's attack, and each policy's certified Lipschitz bound.

For each seed: train deterministic BC (CORL defaults) and ``lipschitz_bc`` at each bound ``L`` on
one suite dataset, then evaluate every final policy on the same episodes (env seeds ``1000 + i``):

* ``clean``: the deterministic policy;
* ``noise s``: ``pi(obs + N(0, s^2 I))``, fresh noise every step
  (:func:`policyfit.evaluation.certify.smoothed_policy`);
* ``attack e``: :func:`~policyfit.evaluation.certify.action_deviation_attack` with per-step l2 norm
  ``e`` (of 8 random directions, the one that moves the policy's action the most), on the
  unsmoothed policy (``smoothed_policy`` with sigma 0), as ``policyfit certify`` runs its attack.

``bound``: the exact certified Lipschitz constant, raw observation -> action, of the saved policy
(:func:`policyfit.algos.lipschitz_bc.lipschitz_bound`; for plain BC the same product of spectral
norms, which is an upper bound only). ``local``: the largest ratio
``||pi(x) - pi(y)|| / ||x - y||`` over 2,000 dataset observations ``x`` and ``y = x + N(0, 0.01^2 I)``,
an empirical lower bound of the true constant. Results are written after every seed, so a killed
run leaves what it measured; finished runs and evaluations are reused.

Usage: ``python benchmarks/lipschitz_bc.py [--dataset hopper-medium] [--size 100000]
[--steps 20000] [--seeds 0,1] [--lipschitz 10,30,100] [--noise 0.05,0.1,0.2] [--attack 0.1,0.3]
[--episodes 10]``; writes ``benchmarks/results/lipschitz_bc_<cpu-kind>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from common import RESULTS_DIR, cpu_kind, train_or_resume, write_result, write_text

EVAL_SEED = 1000


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--lipschitz", default="10,30,100")
    parser.add_argument("--noise", default="0.05,0.1,0.2")
    parser.add_argument("--attack", default="0.1,0.3")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/policyfit_bench_lipbc")
    args = parser.parse_args()

    from policyfit.envs.datasets import make_dataset

    seeds = [int(s) for s in args.seeds.split(",")]
    policies = {"bc": ("bc", {})} | {
        f"L={v:g}": ("lipschitz_bc", {"lipschitz": v}) for v in floats(args.lipschitz)
    }
    work = Path(args.workdir)
    name = f"lipschitz_bc_{cpu_kind()}"
    start = time.time()
    rows: list[dict] = []
    data_cache: dict = {}

    def data():
        if "ds" not in data_cache:
            data_cache["ds"] = make_dataset(args.dataset, size=args.size, seed=0, progress=False)
        return data_cache["ds"]

    for seed in seeds:
        for label, (algo, config) in policies.items():
            run = work / f"{label.replace('=', '')}-{args.dataset}-n{args.size}-s{seed}"
            t0 = time.time()
            summary = train_or_resume(
                algo, data, run, args.steps, seed, eval_every=0, save_every=0,
                eval_episodes=1, config=config,
            )  # fmt: skip
            cached = run / "robustness.json"
            key = {k: getattr(args, k) for k in ("noise", "attack", "episodes")}
            row = json.loads(cached.read_text()) if cached.is_file() else None
            if row is None or row.get("key") != key:
                row = evaluate_run(run, label, seed, args, data)
                row["key"] = key
                cached.write_text(json.dumps(row))
            row["train_seconds"] = round(summary["train_seconds"], 1)
            rows.append(row)
            print(f"seed {seed} {label}: {time.time() - t0:.0f}s {row}", flush=True)
        write(name, args, list(policies), rows, time.time() - start)


def evaluate_run(run: Path, label: str, seed: int, args, data) -> dict:
    import policyfit
    from policyfit.algos.lipschitz_bc import lipschitz_bound
    from policyfit.evaluation.certify import action_deviation_attack, smoothed_policy
    from policyfit.training.rundir import RunDir, load_policy

    policy = load_policy(run)
    env_id = RunDir(run).read_config()["dataset"]["env_id"]

    def score(fn) -> float:
        out = policyfit.evaluate(fn, env_id=env_id, episodes=args.episodes, seed=EVAL_SEED)
        return out["normalized_score"]

    ds = data()
    rng = np.random.default_rng(0)
    x = ds.observations[rng.integers(0, len(ds), 2000)].astype(np.float32)
    y = (x + 0.01 * rng.normal(size=x.shape)).astype(np.float32)
    num = np.linalg.norm(
        np.asarray(policy(x), np.float64) - np.asarray(policy(y), np.float64), axis=1
    )
    local = float(np.max(num / np.linalg.norm(x.astype(np.float64) - y, axis=1)))
    row = {
        "seed": seed,
        "policy": label,
        "bound": lipschitz_bound(policy.params),
        "local": local,
        "clean": score(policy),
    }
    for i, s in enumerate(floats(args.noise)):
        row[f"noise {s:g}"] = score(smoothed_policy(policy, s, seed=seed + 7919 * (i + 1)))
    for i, e in enumerate(floats(args.attack)):
        attack = action_deviation_attack(policy, e, seed=seed + 104729 * (i + 1))
        row[f"attack {e:g}"] = score(smoothed_policy(policy, 0.0, seed=seed, attack=attack))
    return row


def columns(args) -> list[str]:
    return (
        ["clean"]
        + [f"noise {s:g}" for s in floats(args.noise)]
        + [f"attack {e:g}" for e in floats(args.attack)]
    )


def write(name: str, args, policies: list[str], rows: list[dict], seconds: float) -> None:
    cols = columns(args)
    payload = {
        "dataset": args.dataset,
        "size": args.size,
        "steps": args.steps,
        "episodes": args.episodes,
        "eval_seed": EVAL_SEED,
        "lipschitz": floats(args.lipschitz),
        "noise_sigmas": floats(args.noise),
        "attack_per_step_norms": floats(args.attack),
        "attack": "action_deviation_attack, 8 random directions per step, unsmoothed policy",
        "seconds": round(seconds, 1),
        "rows": [{k: v for k, v in r.items() if k != "key"} for r in rows],
    }
    write_result(name, payload)
    done = sorted({r["seed"] for r in rows})
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    train_min = sum(r["train_seconds"] for r in rows) / 60

    def cell(policy: str, col: str, fmt: str = ".1f") -> str:
        vals = [r[col] for r in rows if r["policy"] == policy]
        return f"{np.mean(vals):{fmt}} +- {np.std(vals):{fmt}}" if vals else "-"

    lines = [
        f"# Lipschitz-constrained BC vs BC under observation perturbations "
        f"({args.dataset}, cpu, {cpu_kind()})",
        "",
        f"{args.size:,} transitions, {args.steps:,} updates per run, seeds {done}, "
        f"{args.episodes} evaluation episodes per policy and condition (env seeds {EVAL_SEED}+). "
        f"Normalized score, mean +- std over seeds. Training {train_min:.0f} min (all runs), this "
        f"invocation {seconds / 60:.0f} min; load average at the end {load} (shared 2-core "
        "machine).",
        "",
        "| policy | bound | local | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for p in policies:
        lines.append(
            f"| {p} | {cell(p, 'bound', '.3g')} | {cell(p, 'local', '.2f')} | "
            + " | ".join(cell(p, c) for c in cols)
            + " |"
        )
    lines += [
        "",
        "bound: the certified Lipschitz constant, raw observation -> action (l2), exact product of "
        "the layers' spectral norms with the normalization's 1/std (for bc an upper bound only). "
        "local: the largest ||pi(x) - pi(y)|| / ||x - y|| over 2,000 dataset observations and "
        "y = x + N(0, 0.01^2 I). noise s: Gaussian noise of std s on every observation dimension, "
        "every step. attack e: `action_deviation_attack` (the `certify` attack) with per-step l2 "
        "norm e, the worst of 8 random directions for the policy's action.",
    ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    plot(name, policies, cols, rows)


def plot(name: str, policies: list[str], cols: list[str], rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policyfit.common.files import atomic_write_bytes
    from policyfit.evaluation.stats import figure_png_bytes

    fig, ax = plt.subplots(figsize=(8, 4))
    xs = np.arange(len(cols))
    width = 0.8 / len(policies)
    for i, p in enumerate(policies):
        means = [np.mean([r[c] for r in rows if r["policy"] == p]) for c in cols]
        stds = [np.std([r[c] for r in rows if r["policy"] == p]) for c in cols]
        ax.bar(xs + (i - (len(policies) - 1) / 2) * width, means, width, yerr=stds, label=p)
    ax.set_xticks(xs, cols, rotation=20)
    ax.set_ylabel("normalized score")
    ax.set_title("BC vs Lipschitz-constrained BC (mean +- std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(RESULTS_DIR / f"{name}.png", figure_png_bytes(fig))
    plt.close(fig)


if __name__ == "__main__":
    main()
