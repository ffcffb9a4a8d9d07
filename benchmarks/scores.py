"""Normalized scores of bc, td3bc, iql and cql on three suite datasets, beside CORL's numbers.

    python benchmarks/scores.py [--steps 100000] [--seeds 0,1] [--algos bc,td3bc,iql,cql]
                                [--datasets hopper-medium,halfcheetah-medium,walker2d-medium-replay]

Every run is a normal ``policyfit.train`` run directory under ``benchmarks/work/scores/``; a run
with a ``summary.json`` is not repeated and a killed run is resumed, so the benchmark can be
continued across sessions in the background. Results: ``benchmarks/results/scores.json`` and
``scores.md`` (mean +- std over seeds of the final normalized score, 10 evaluation episodes).

CORL numbers (Tarasov et al. 2022, 1M updates, D4RL -v2 datasets, MuJoCo -v2 envs). Ours differ
by construction: the step budget, gymnasium -v5 environments and our own behavior policies (the
suite rebuilds D4RL-style datasets locally; see ``policyfit data list``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "scores"

# Final normalized scores from the CORL README (v2 datasets, 1M steps, mean over 4 seeds).
CORL = {
    "iql": {"hopper-medium": 67.5, "halfcheetah-medium": 48.3, "walker2d-medium-replay": 82.2},
    "td3bc": {"hopper-medium": 60.4, "halfcheetah-medium": 48.1, "walker2d-medium-replay": 85.6},
    "cql": {"hopper-medium": 59.1, "halfcheetah-medium": 47.0, "walker2d-medium-replay": 73.1},
    "bc": {"hopper-medium": 53.5, "halfcheetah-medium": 42.4, "walker2d-medium-replay": 21.8},
}


def run_one(algo: str, dataset: str, seed: int, steps: int, eval_every: int) -> dict:
    import policyfit

    run_dir = WORK / f"{algo}-{dataset}-s{seed}"
    summary = run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text())["steps"] >= steps:
        return json.loads(summary.read_text())
    resume = run_dir if (run_dir / "config.json").is_file() else None
    result = policyfit.train(
        None if resume else algo,
        dataset,
        steps=steps,
        seed=seed,
        out=None if resume else run_dir,
        resume=resume,
        eval_every=eval_every,
        eval_episodes=10,
        save_every=eval_every,
    )
    return result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bc,td3bc,iql,cql")
    parser.add_argument(
        "--datasets", default="hopper-medium,halfcheetah-medium,walker2d-medium-replay"
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from common import write_result

    runs, table = [], {}
    for dataset in args.datasets.split(","):
        for algo in args.algos.split(","):
            scores = []
            for seed in (int(s) for s in args.seeds.split(",")):
                summary = run_one(algo, dataset, seed, args.steps, args.eval_every)
                runs.append(summary)
                scores.append(summary["final_normalized_score"])
                print(
                    f"{algo:6s} {dataset:24s} seed {seed}: {summary['final_normalized_score']:.1f}",
                    flush=True,
                )
            table.setdefault(algo, {})[dataset] = {
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "seeds": len(scores),
                "corl": CORL.get(algo, {}).get(dataset),
            }
    payload = {
        "budget_steps": args.steps,
        "eval_episodes": 10,
        "table": table,
        "runs": runs,
        "note": "CORL: 1M steps on D4RL v2; ours: budget above, gymnasium v5, suite behavior policies",
    }
    write_result("scores", payload)
    lines = [
        f"# Normalized scores ({args.steps:,} updates, {args.seeds.count(',') + 1} seeds; CORL: 1M updates)",
        "",
        "| algorithm | " + " | ".join(args.datasets.split(",")) + " |",
        "|---|" + "---|" * len(args.datasets.split(",")),
    ]
    for algo, row in table.items():
        cells = [f"{v['mean']:.1f} +- {v['std']:.1f} (CORL {v['corl']})" for v in row.values()]
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    (HERE / "results" / "scores.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
