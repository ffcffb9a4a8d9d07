"""V-GPS on the suite: BC and %BC policies steered by an IQL critic, base vs steered.

For each seed: train a Gaussian BC policy, a Gaussian %BC policy (``top_fraction = 0.1``) and an
IQL run (its target critic scores actions) on one suite dataset, then evaluate

* ``mode``: the base policy's deterministic action (what ``policyfit eval`` of the base run does);
* ``K=1``: one sampled action (the stochastic base policy; V-GPS with K = 1);
* ``K=k``: V-GPS, the argmax of the critic's Q over k sampled actions (temperature 0);
* ``K=k T=t``: V-GPS sampling softmax(Q / t) over the k candidates (the official default t = 1);

all on the same evaluation episodes (env seeds ``1000 + i``). The policies are Gaussian because a
deterministic BC policy gives K equal candidates (steering is then a no-op). IQL's own
deterministic score is recorded for reference. Results are written after every seed, so a killed
run leaves what it measured.

Usage: ``python benchmarks/vgps.py [--dataset hopper-medium] [--size 100000] [--steps 30000]
[--seeds 0,1] [--ks 1,10,30] [--temperatures 0,1] [--episodes 10]``; writes ``benchmarks/results/vgps_<cpu-kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import RESULTS_DIR, cpu_kind, train_or_resume, write_result, write_text

BASES = {
    "bc": {"policy": "gaussian"},
    "pct_bc": {"policy": "gaussian", "top_fraction": 0.1},
}
EVAL_SEED = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hopper-medium")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--ks", default="1,10,30")
    parser.add_argument("--temperatures", default="0,1")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/policyfit_bench_vgps")
    args = parser.parse_args()

    import policyfit
    from policyfit.envs.datasets import make_dataset
    from policyfit.training.steer import steer

    seeds = [int(s) for s in args.seeds.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    temps = [float(t) for t in args.temperatures.split(",")]
    variants = ["mode"] + [label(k, t) for t in temps for k in ks if k > 1 or t == temps[0]]
    train_seconds: dict[str, float] = {}
    work = Path(args.workdir)
    name = f"vgps_{cpu_kind()}"
    start = time.time()
    rows: list[dict] = []

    def data():
        return make_dataset(args.dataset, size=args.size, seed=0, progress=False)

    def score(run: Path) -> float:
        out = policyfit.evaluate(run, episodes=args.episodes, seed=EVAL_SEED)
        return out["normalized_score"]

    for seed in seeds:
        runs = {}
        for base, config in [*BASES.items(), ("iql", {})]:
            algo = "bc" if base != "iql" else "iql"
            run = work / f"{base}-{args.dataset}-n{args.size}-s{seed}"
            t0 = time.time()
            summary = train_or_resume(
                algo,
                data,
                run,
                args.steps,
                seed,
                eval_every=0,
                save_every=0,
                eval_episodes=1,
                config=config,
            )
            runs[base] = run
            train_seconds[run.name] = round(summary["train_seconds"], 1)
            print(f"seed {seed}: trained {base} in {time.time() - t0:.0f}s", flush=True)
        rows.append(
            {"seed": seed, "base": "iql", "variant": "mode", "normalized_score": score(runs["iql"])}
        )
        for base in BASES:
            rows.append(
                {
                    "seed": seed,
                    "base": base,
                    "variant": "mode",
                    "normalized_score": score(runs[base]),
                }
            )
            for t in temps:
                for k in ks:
                    if label(k, t) not in variants:
                        continue  # K = 1 draws one sample: the temperature plays no part
                    out = work / f"vgps-{base}-k{k}-t{t:g}-{args.dataset}-n{args.size}-s{seed}"
                    if not (out / "policy" / "policy.json").is_file():
                        steer(runs[base], runs["iql"], out, k=k, temperature=t)
                    t0 = time.time()
                    rows.append(
                        {
                            "seed": seed,
                            "base": base,
                            "variant": label(k, t),
                            "normalized_score": score(out),
                            "eval_seconds": round(time.time() - t0, 1),
                        }
                    )
                    print(f"seed {seed}: {rows[-1]}", flush=True)
        write(name, args, variants, rows, time.time() - start, train_seconds)


def label(k: int, temperature: float) -> str:
    return f"K={k}" if temperature == 0 else f"K={k} T={temperature:g}"


def write(
    name: str, args, variants: list[str], rows: list[dict], seconds: float, train: dict
) -> None:
    payload = {
        "dataset": args.dataset,
        "size": args.size,
        "steps": args.steps,
        "episodes": args.episodes,
        "eval_seed": EVAL_SEED,
        "bases": BASES,
        "critic": "iql (defaults), target critic of its final checkpoint, min over 2 heads",
        "temperatures": args.temperatures,
        "seconds": round(seconds, 1),
        "train_seconds": train,
        "rows": rows,
    }
    write_result(name, payload)
    done = sorted({r["seed"] for r in rows})
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# V-GPS: BC / %BC steered by an IQL critic ({args.dataset}, cpu, {cpu_kind()})",
        "",
        f"{args.size:,} transitions, {args.steps:,} updates per run, seeds {done}, "
        f"{args.episodes} evaluation episodes per policy (env seeds {EVAL_SEED}+). Normalized score, mean +- std over seeds. Training "
        f"{sum(train.values()) / 60:.0f} min (all runs), this invocation {seconds / 60:.0f} min; "
        f"load average at the end {load} (shared 2-core machine).",
        "",
        "| policy | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for base in [*BASES, "iql"]:
        cells = []
        for v in variants:
            vals = [r["normalized_score"] for r in rows if r["base"] == base and r["variant"] == v]
            cells.append(f"{np.mean(vals):.1f} +- {np.std(vals):.1f}" if vals else "-")
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "mode: the base policy's deterministic action; K=1: one sampled action; K=k: the argmax "
        "of the IQL critic's Q over k sampled actions (V-GPS); T=t: the candidate sampled from "
        "softmax(Q / t) instead (the official code's default t = 1). iql: IQL's own policy, for "
        "reference.",
    ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
