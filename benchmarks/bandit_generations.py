"""The generations effect (Vangara & Egg, arXiv 2412.00569) and its mitigations, measured.

    python benchmarks/bandit_generations.py [--gammas 50,1000,10000] [--seeds 0,1,2,3,4]

Runs :func:`policyfit.bandit.simulate.simulate` on the payment-like environment for every
retraining variant (naive, ipw, balanced, pooled, floor, uniform) at several IGW ``gamma`` (from
exploratory to near-greedy), and records per generation the expected authorization rate of the
deployed policy (mean and SE over seeds), the positive share of the training labels and the
oracle's error. "Worst drop" is the largest fall of a generation below the best earlier learned
generation. Writes ``benchmarks/results/bandit_generations_<cpu kind>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402


def main() -> None:
    from policyfit.bandit.simulate import VARIANTS, PaymentEnv, simulate
    from policyfit.report.bandit import generations_png, generations_table, worst_drop

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gammas", default="50,1000,10000")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--generations", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=10_000)
    args = parser.parse_args()
    gammas = [float(g) for g in args.gammas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    env = PaymentEnv()
    results, t0 = {}, time.perf_counter()
    for gamma in gammas:
        results[f"gamma = {gamma:g}"] = simulate(
            env,
            list(VARIANTS),
            generations=args.generations,
            rounds=args.rounds,
            gamma=gamma,
            seeds=seeds,
            progress=False,
        )
        print(f"gamma {gamma:g} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    name = f"bandit_generations_{cpu_kind()}"
    summary = {}
    for title, result in results.items():
        summary[title] = {}
        for variant, metrics in result["variants"].items():
            mean = np.mean(metrics["expected_reward"], axis=0)
            summary[title][variant] = {
                "mean_after_g0": float(mean[1:].mean()),
                "worst_drop": worst_drop(mean),
                "last": float(mean[-1]),
            }
    write_result(
        name,
        {
            "seconds": time.perf_counter() - t0,
            "summary": summary,
            "results": results,
        },
    )
    generations_png(results, RESULTS_DIR / f"{name}.png")
    lines = [
        f"# The generations effect on PaymentEnv ({cpu_kind()})",
        "",
        f"{args.generations} generations of {args.rounds:,} decisions, seeds {seeds}; IGW over a "
        "per-action ridge oracle; 20% of each generation's rewards arrive one generation late. "
        "Cells: expected authorization rate of the deployed policy (known truth), mean over seeds.",
        "",
        f"![generations]({name}.png)",
        "",
    ]
    for title, result in results.items():
        lines += [f"## {title}", "", generations_table(result), ""]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
