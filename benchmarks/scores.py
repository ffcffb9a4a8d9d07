"""Normalized scores on three suite datasets with intervals, beside CORL's and the papers' numbers.

    python benchmarks/scores.py [--steps 100000] [--seeds 0,1,2] [--algos bc,td3bc,iql,prdc,...]
                                [--datasets hopper-medium,halfcheetah-medium,walker2d-medium-replay]
                                [--name scores_10k_intel-xeon] [--no-paper-settings]

Every run is a normal ``policyfit.train`` run directory under ``benchmarks/work/<name>/``; a run
with a ``summary.json`` is not repeated and a killed run is resumed, so the benchmark can be
continued across sessions in the background. Results: ``benchmarks/results/<name>.json`` and
``<name>.md`` (``--name``, default ``scores``): mean +- std over seeds of the final normalized
score, 10 evaluation episodes, with 95% bootstrap intervals over seeds per cell and, across the
datasets, the mean and IQM with stratified-bootstrap intervals (:func:`policyfit.evaluation.stats.
aggregate_scores`). Each newer algorithm is compared with TD3+BC and IQL per dataset: "above" or
"below" only when the intervals are separated. Algorithms with per-environment settings in their
paper (``PAPER_SETTINGS``, :func:`policyfit.algos.registry.paper_settings`) run with them unless
``--no-paper-settings``; ``--set`` still wins.

CORL numbers (Tarasov et al. 2022, 1M updates, D4RL -v2 datasets, MuJoCo -v2 envs). Ours differ
by construction: the step budget, gymnasium -v5 environments and our own behavior policies (the
suite rebuilds D4RL-style datasets locally; see ``policyfit data list``).
"""

from __future__ import annotations

import argparse
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
    # DT: the same table's DT column (65.10 / 42.20 / 59.86; CORL README @ 2ed69e34); CORL's DT
    # config sets its own update budget, not checked here
    "dt": {"hopper-medium": 65.1, "halfcheetah-medium": 42.2, "walker2d-medium-replay": 59.9},
}

# What each newer algorithm's own paper reports on the D4RL v2 datasets (other data, 1M updates):
# (score, where it was read). Only numbers whose source was found are listed; a source that is not
# the paper itself (or a verbatim copy of its table) starts with "secondary" and is marked † in the
# table. Session 10 looked them up (search tools); the PRDC and A2PR papers' own tables could not
# be read (the stored arXiv pages stop before them, and neither official README has a table).
_RVS_T1 = "RvS paper (arXiv 2112.10751) Table 1, RvS-R column, v2 datasets (Appendix A)"
_A2PR = "secondary: DOSER paper's Table 1, A2PR column ('taken from original papers')"
PAPER: dict[str, dict[str, tuple[float, str]]] = {
    "prdc": {"walker2d-medium-replay": (92.0, "secondary: wizwand.com leaderboard for the paper")},
    "a2pr": {
        "hopper-medium": (100.8, _A2PR),
        "halfcheetah-medium": (68.6, _A2PR),
        "walker2d-medium-replay": (94.4, _A2PR),
    },
    "rvs_r": {
        "hopper-medium": (60.2, _RVS_T1),
        "halfcheetah-medium": (41.6, _RVS_T1),
        "walker2d-medium-replay": (60.6, _RVS_T1),
    },
    # lipschitz_bc (Al Makdah et al. 2021) and demo_reg (Tiapkin et al. 2024) report no D4RL
    # numbers (a control-theory paper and a theory paper).
}

# The algorithms every newer one is compared with, per dataset.
BASELINES = ("td3bc", "iql")
# Older algorithms shown for reference only (no verdict against the baselines).
CLASSIC = ("bc", "cql")


def run_dir_of(algo: str, dataset: str, seed: int, name: str) -> Path:
    return WORK / name / f"{algo}-{dataset}-s{seed}"


def finished(algo: str, dataset: str, seed: int, steps: int, name: str = "scores") -> dict | None:
    """A finished run's summary: from its run directory, else from the committed results file
    ``results/<name>.json`` (run directories are not committed; a later session, perhaps on a
    fresh machine, continues the table from what earlier ones recorded)."""
    from policyfit.training.rundir import RunDir

    summary = RunDir(run_dir_of(algo, dataset, seed, name)).read_summary()
    if summary is not None and summary["steps"] >= steps:
        return summary
    return recorded(name).get((algo, dataset, seed, steps))


_RECORDED: dict[str, dict] = {}


def recorded(name: str) -> dict[tuple[str, str, int, int], dict]:
    """``{(algorithm, dataset, seed, steps): summary}`` of the runs in ``results/<name>.json``."""
    if name not in _RECORDED:
        import json

        path = HERE / "results" / f"{name}.json"
        runs = json.loads(path.read_text()).get("runs", []) if path.is_file() else []
        _RECORDED[name] = {(r["algorithm"], r["dataset"], r["seed"], r["steps"]): r for r in runs}
    return _RECORDED[name]


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


def collect(args: argparse.Namespace, overrides: dict, algo_steps: dict) -> tuple[list, dict]:
    """Train (or read) every run; ``(runs, {(algo, dataset): [summary per seed]})``."""
    from policyfit.algos.registry import paper_settings

    runs: list[dict] = []
    cells: dict[tuple[str, str], list[dict]] = {}
    seeds = [int(s) for s in args.seeds.split(",")]
    # seeds outermost: a budget cut short still leaves every cell with its first seed
    for seed in seeds:
        for dataset in args.datasets.split(","):
            for algo in args.algos.split(","):
                steps = algo_steps.get(algo, args.steps)
                if args.table_only:
                    summary = finished(algo, dataset, seed, steps, args.name)
                    if summary is None:
                        continue
                elif (summary := finished(algo, dataset, seed, steps, args.name)) is None:
                    paper = {} if args.no_paper_settings else paper_settings(algo, dataset)
                    config = {**paper, **overrides.get(algo, {})} or None
                    summary = run_one(
                        algo, dataset, seed, steps, args.eval_every, config, args.name
                    )
                if "config" not in summary:  # recorded with the run, for a fresh machine
                    summary = {**summary, "config": run_config(summary)}
                runs.append(summary)
                cells.setdefault((algo, dataset), []).append(summary)
                print(
                    f"{algo:12s} {dataset:24s} seed {seed}: "
                    f"{summary['final_normalized_score']:.1f}",
                    flush=True,
                )
    return runs, cells


def run_config(summary: dict) -> dict | None:
    """The algorithm config a run used (its ``config.json``), for the record."""
    from policyfit.training.rundir import RunDir

    return RunDir(summary["run_dir"]).read_config().get("config")


def compare(a: dict, b: dict) -> str:
    """``above``/``below`` when the intervals of cells ``a`` and ``b`` are separated (each with
    at least 3 seeds: the bootstrap interval of fewer is no interval)."""
    if min(a["seeds"], b["seeds"]) < 3:
        return "n<3"
    if a["ci_low"] > b["ci_high"]:
        return "above"
    if a["ci_high"] < b["ci_low"]:
        return "below"
    return "overlap"


def tabulate(cells: dict, algos: list[str], datasets: list[str], algo_steps: dict, args) -> dict:
    from policyfit.evaluation.stats import aggregate_scores

    table: dict[str, dict] = {}
    for algo in algos:
        for dataset in datasets:
            summaries = cells.get((algo, dataset))
            if not summaries:
                continue
            scores = np.array([s["final_normalized_score"] for s in summaries])
            ci = aggregate_scores({algo: [scores]}, metrics=["mean"], reps=2000)[algo]["mean"]
            paper = PAPER.get(algo, {}).get(dataset)
            table.setdefault(algo, {})[dataset] = {
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "ci_low": ci["ci_low"],
                "ci_high": ci["ci_high"],
                "scores": scores.tolist(),
                "best_mean": float(np.mean([s["best_normalized_score"] for s in summaries])),
                "seeds": len(scores),
                "steps": algo_steps.get(algo, args.steps),
                "config": summaries[0].get("config"),
                "corl": CORL.get(algo, {}).get(dataset),
                "paper_d4rl": None if paper is None else {"score": paper[0], "source": paper[1]},
            }
    return table


def aggregate(table: dict, datasets: list[str]) -> dict:
    """Mean and IQM over datasets x seeds, stratified-bootstrap intervals (full rows only)."""
    from policyfit.evaluation.stats import aggregate_scores

    full = {
        algo: [np.array(row[d]["scores"]) for d in datasets]
        for algo, row in table.items()
        if all(d in row for d in datasets)
    }
    return aggregate_scores(full, metrics=["mean", "iqm"], reps=2000) if full else {}


def verdicts(table: dict, datasets: list[str]) -> dict:
    """``{algo: {dataset: {baseline: above|below|overlap}}}`` for every non-baseline row."""
    out: dict[str, dict] = {}
    for algo, row in table.items():
        if algo in BASELINES or algo in CLASSIC:
            continue
        for d in datasets:
            for base in BASELINES:
                if d in row and d in table.get(base, {}):
                    out.setdefault(algo, {}).setdefault(d, {})[base] = compare(
                        row[d], table[base][d]
                    )
    return out


def plot(table: dict, datasets: list[str], data_level: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policyfit.evaluation.stats import figure_png_bytes

    algos = list(table)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.2 * len(datasets), 0.45 * len(algos) + 1.6)
    )
    for ax, d in zip(np.atleast_1d(axes), datasets, strict=True):
        for i, algo in enumerate(algos):
            v = table[algo].get(d)
            if v is None:
                continue
            ax.errorbar(
                v["mean"],
                i,
                xerr=[[v["mean"] - v["ci_low"]], [v["ci_high"] - v["mean"]]],
                fmt="o",
                capsize=3,
                color="C0" if algo in BASELINES or algo in CLASSIC else "C1",
            )
            ax.plot(v["scores"], [i] * len(v["scores"]), "x", color="grey", ms=4)
        if data_level.get(d) is not None:
            ax.axvline(data_level[d], ls="--", color="grey", lw=1, label="data")
            # below the last row, so the legend never hides a cell
            ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.32), fontsize=8, frameon=False)
        ax.set_yticks(range(len(algos)), algos)
        ax.invert_yaxis()
        ax.set_title(d)
        ax.set_xlabel("normalized score (95% CI; x: seeds)")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    from policyfit.common.files import atomic_write_bytes

    atomic_write_bytes(path, figure_png_bytes(fig))
    plt.close(fig)


def markdown(payload: dict, datasets: list[str], args) -> str:
    from policyfit.evaluation.stats import format_interval

    table, overrides = payload["table"], payload["overrides"]
    lines = [
        f"# Normalized scores ({args.steps:,} updates unless stated, up to "
        f"{len(args.seeds.split(','))} seeds; CORL and papers: 1M updates on D4RL v2)",
        "",
        f"Machine: {payload['machine']['cpu']} ({payload['machine']['cpu_count']} cores); "
        f"commit {payload['commit']}; jax {payload['versions'].get('jax')}.",
        "",
        "Cells: final normalized score, mean [95% bootstrap interval over seeds] (n seeds); "
        "then CORL's final score or the algorithm's own paper's D4RL number (other data, other "
        "budget: a reference, not a target). `data` is the mean normalized return of the "
        "dataset's own episodes. Paper per-environment settings applied: "
        + ("no" if args.no_paper_settings else "yes (`policyfit train --paper-settings`)")
        + ".",
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
        "| algorithm | " + " | ".join(datasets) + " | all: mean | all: IQM |",
        "|---|" + "---|" * (len(datasets) + 2),
        "| data | "
        + " | ".join(
            f"{payload['data_normalized_return_mean'][d]:.1f}"
            if payload["data_normalized_return_mean"].get(d) is not None
            else "—"
            for d in datasets
        )
        + " | | |",
    ]
    for algo, row in table.items():
        cells = []
        for d in datasets:
            v = row.get(d)
            if v is None:
                paper = PAPER.get(algo, {}).get(d)
                mark = "†" if paper and paper[1].startswith("secondary") else ""
                cells.append(f"— (paper {paper[0]}{mark})" if paper else "—")
                continue
            ref = (
                f"CORL {v['corl']}"
                if v["corl"] is not None
                else f"paper {v['paper_d4rl']['score']}"
                + ("†" if v["paper_d4rl"]["source"].startswith("secondary") else "")
                if v["paper_d4rl"]
                else "paper: —"
            )
            budget = "" if v["steps"] == args.steps else f", {v['steps']:,} steps"
            cells.append(
                f"{format_interval(v['mean'], v['ci_low'], v['ci_high'])} "
                f"(n={v['seeds']}{budget}; {ref})"
            )
        agg = payload["aggregate"].get(algo, {})
        for m in ("mean", "iqm"):
            a = agg.get(m)
            cells.append(format_interval(a["estimate"], a["ci_low"], a["ci_high"]) if a else "—")
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    if payload["verdicts"]:
        lines += [
            "",
            "## Against TD3+BC and IQL (separated 95% intervals only)",
            "",
            "| algorithm | " + " | ".join(datasets) + " |",
            "|---|" + "---|" * len(datasets),
        ]
        for algo, by_d in payload["verdicts"].items():
            lines.append(
                f"| {algo} | "
                + " | ".join(
                    ", ".join(f"{v} {b}" for b, v in by_d.get(d, {}).items()) or "—"
                    for d in datasets
                )
                + " |"
            )
    sources: dict[tuple[str, str], list[str]] = {}
    for a, r in table.items():
        for d, v in r.items():
            if v["paper_d4rl"]:
                sources.setdefault((a, v["paper_d4rl"]["source"]), []).append(d)
    if sources:
        lines += ["", "Paper numbers (D4RL v2, other data; † secondary source):"]
        lines += [f"- {a} ({', '.join(ds)}): {s}" for (a, s), ds in sorted(sources.items())]
    lines += ["", f"![scores]({args.name}.png)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="bc,td3bc,iql,prdc,a2pr,lipschitz_bc,demo_reg")
    parser.add_argument(
        "--datasets", default="hopper-medium,halfcheetah-medium,walker2d-medium-replay"
    )
    parser.add_argument("--seeds", default="0,1,2")
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
        "--no-paper-settings",
        action="store_true",
        help="run every algorithm with its defaults, not its paper's per-environment settings",
    )
    parser.add_argument(
        "--table-only", action="store_true", help="tabulate finished runs only; train nothing"
    )
    parser.add_argument(
        "--name",
        default="scores",
        help="results/<name>.json/.md/.png and runs under work/<name>/ (one name per budget)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from common import parse_overrides, write_result, write_text

    overrides = parse_overrides(args.overrides)
    algo_steps = {
        k: int(v) for k, v in (item.split("=") for item in args.algo_steps.split(",") if item)
    }
    datasets, algos = args.datasets.split(","), args.algos.split(",")
    runs, cells = collect(args, overrides, algo_steps)
    table = tabulate(cells, algos, datasets, algo_steps, args)
    data_level = {
        d: next((s.get("data_normalized_return_mean") for s in runs if s["dataset"] == d), None)
        for d in datasets
    }
    payload = {
        "budget_steps": args.steps,
        "algo_steps": algo_steps,
        "overrides": overrides,
        "paper_settings": not args.no_paper_settings,
        "data_normalized_return_mean": data_level,
        "eval_episodes": 10,
        "table": table,
        "aggregate": aggregate(table, datasets),
        "verdicts": verdicts(table, datasets),
        "runs": runs,
        "note": "CORL and papers: 1M steps on D4RL v2; ours: budget above, gymnasium v5, suite "
        "behavior policies",
    }
    path = write_result(args.name, payload)
    import json

    record = json.loads(path.read_text())
    write_text(HERE / "results" / f"{args.name}.md", markdown(record, datasets, args))
    if table:
        plot(table, datasets, data_level, HERE / "results" / f"{args.name}.png")


if __name__ == "__main__":
    main()
