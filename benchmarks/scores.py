"""Normalized scores of bc, td3bc, iql and cql on three suite datasets, beside CORL's numbers.

    python benchmarks/scores.py [--steps 100000] [--seeds 0,1] [--algos bc,td3bc,iql,cql]
                                [--datasets hopper-medium,halfcheetah-medium,walker2d-medium-replay]

Every run is a normal ``policyfit.train`` run directory under ``benchmarks/work/<name>/``; a run
with a ``summary.json`` is not repeated and a killed run is resumed, so the benchmark can be
continued across sessions in the background. Results: ``benchmarks/results/<name>.json`` and
``<name>.md`` (``--name``, default ``scores``): mean +- std over seeds of the final normalized
score, 10 evaluation episodes.

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
WORK = HERE / "work"

# Final normalized scores from the CORL README ("Last Scores", Gym-MuJoCo table; D4RL v2 datasets,
# 1M steps, mean over 4 seeds). BC's row checked against that table in session 2: 53.51 / 42.40 / 21.80.
CORL = {
    "iql": {"hopper-medium": 67.5, "halfcheetah-medium": 48.3, "walker2d-medium-replay": 82.2},
    "td3bc": {"hopper-medium": 60.4, "halfcheetah-medium": 48.1, "walker2d-medium-replay": 85.6},
    "cql": {"hopper-medium": 59.1, "halfcheetah-medium": 47.0, "walker2d-medium-replay": 73.1},
    "bc": {"hopper-medium": 53.5, "halfcheetah-medium": 42.4, "walker2d-medium-replay": 21.8},
}


def run_dir_of(algo: str, dataset: str, seed: int, name: str) -> Path:
    return WORK / name / f"{algo}-{dataset}-s{seed}"


def finished(algo: str, dataset: str, seed: int, steps: int, name: str = "scores") -> dict | None:
    summary = run_dir_of(algo, dataset, seed, name) / "summary.json"
    if summary.is_file() and json.loads(summary.read_text())["steps"] >= steps:
        return json.loads(summary.read_text())
    return None


def run_one(
    algo: str,
    dataset: str,
    seed: int,
    steps: int,
    eval_every: int,
    config: dict | None = None,
    name: str = "scores",
) -> dict:
    from common import train_or_resume

    run_dir = run_dir_of(algo, dataset, seed, name)
    return train_or_resume(
        algo, dataset, run_dir, steps, seed, eval_every, save_every=eval_every, config=config
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bc,td3bc,iql,cql")
    parser.add_argument(
        "--datasets", default="hopper-medium,halfcheetah-medium,walker2d-medium-replay"
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument(
        "--algo-steps",
        default="",
        help="per-algorithm budgets that override --steps, e.g. cql=20000 (CQL is ~20x slower)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="ALGO.KEY=VALUE config override, e.g. cql.bc_steps=2000 (repeatable)",
    )
    parser.add_argument(
        "--table-only", action="store_true", help="tabulate finished runs only; train nothing"
    )
    parser.add_argument(
        "--name",
        default="scores",
        help="results/<name>.json/.md and runs under work/<name>/ (one name per budget)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from common import parse_overrides, write_result, write_text

    overrides = parse_overrides(args.overrides)
    algo_steps = {
        k: int(v) for k, v in (item.split("=") for item in args.algo_steps.split(",") if item)
    }
    runs, table = [], {}
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets, algos = args.datasets.split(","), args.algos.split(",")
    by_cell: dict[tuple[str, str], list[float]] = {}
    best: dict[tuple[str, str], list[float]] = {}
    data_level: dict[str, float | None] = {}
    # seeds outermost: a budget cut short still leaves every cell with its first seed
    for seed in seeds:
        for dataset in datasets:
            for algo in algos:
                steps = algo_steps.get(algo, args.steps)
                if args.table_only:
                    summary = finished(algo, dataset, seed, steps, args.name)
                    if summary is None:
                        continue
                else:
                    summary = run_one(
                        algo, dataset, seed, steps, args.eval_every, overrides.get(algo), args.name
                    )
                runs.append(summary)
                best.setdefault((algo, dataset), []).append(summary["best_normalized_score"])
                data_level[dataset] = summary.get("data_normalized_return_mean")
                by_cell.setdefault((algo, dataset), []).append(summary["final_normalized_score"])
                print(
                    f"{algo:6s} {dataset:24s} seed {seed}: {summary['final_normalized_score']:.1f}",
                    flush=True,
                )
    for dataset in datasets:
        for algo in algos:
            scores = by_cell.get((algo, dataset))
            if not scores:
                continue
            table.setdefault(algo, {})[dataset] = {
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "best_mean": float(np.mean(best[(algo, dataset)])),
                "seeds": len(scores),
                "steps": algo_steps.get(algo, args.steps),
                "corl": CORL.get(algo, {}).get(dataset),
            }
    payload = {
        "budget_steps": args.steps,
        "algo_steps": algo_steps,
        "overrides": overrides,
        "data_normalized_return_mean": data_level,
        "eval_episodes": 10,
        "table": table,
        "runs": runs,
        "note": "CORL: 1M steps on D4RL v2; ours: budget above, gymnasium v5, suite behavior policies",
    }
    write_result(args.name, payload)
    lines = [
        f"# Normalized scores ({args.steps:,} updates unless stated, up to {len(seeds)} seeds; "
        "CORL: 1M updates on D4RL v2)",
        "",
        "Cells: final score mean +- std over seeds [mean of each run's best evaluation] (CORL's "
        "final score). `data` is the mean normalized return of the dataset's own episodes.",
        "",
        *(
            [
                "Config overrides: "
                + ", ".join(f"{a}.{k}={v}" for a, kv in overrides.items() for k, v in kv.items()),
                "",
            ]
            if overrides
            else []
        ),
        "| algorithm | " + " | ".join(datasets) + " |",
        "|---|" + "---|" * len(datasets),
        "| data | "
        + " | ".join(
            f"{data_level[d]:.1f}" if data_level.get(d) is not None else "—" for d in datasets
        )
        + " |",
    ]
    for algo, row in table.items():
        cells = []
        for d in datasets:
            v = row.get(d)
            if v is None:
                cells.append("—")
                continue
            budget = "" if v["steps"] == args.steps else f", {v['steps']:,} steps"
            cells.append(
                f"{v['mean']:.1f} +- {v['std']:.1f} [{v['best_mean']:.1f}] "
                f"(CORL {v['corl']}; n={v['seeds']}{budget})"
            )
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    write_text(HERE / "results" / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
