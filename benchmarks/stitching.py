"""Trajectory stitching on MBRCSL's point maze: MBRCSL vs RvS-R / DT vs IQL.

The claim checked (Zhou et al., ICLR 2024): return-conditioned supervised learning alone cannot
beat the best trajectory in its data, MBRCSL can, because its model rollouts stitch the data's
pieces (here: the first half of sources 1-2 and the second half of sources 3-4 of
``pointmaze-stitch``, :mod:`policyfit.envs.maze`). IQL, a Bellman-backup learner, is the other
way to stitch.

For every algorithm and seed: train on the same data (a finished run is reused, a killed one
resumed), then read its final evaluation (``--episodes`` episodes of the evaluation task). The
table gives the mean return over seeds with a 95% bootstrap interval over the seeds'
means (:func:`policyfit.evaluation.stats.bootstrap_ci`), beside the data's best episode return and
the stitched optimum (the card's ``ref_max_score``: the controller on the shortest route). An
algorithm *stitches* here when its interval lies above the data's best. For MBRCSL the table adds
what its rollouts did: how many passed the return filter, whether it fell back to the best
rollouts (none passed), and the goal it conditions on.

Usage: ``python benchmarks/stitching.py [--dataset pointmaze-stitch] [--algos mbrcsl,rvs_r,dt,iql]
[--seeds 0,1,2] [--steps 50000] [--episodes 10] [--set mbrcsl.pretrain_steps=5000 ...]
[--workdir DIR] [--results DIR]``; writes ``<results>/stitching_<cpu-kind>.{json,md,png}``
(``benchmarks/results`` by default). Results are rewritten after every run, so a killed
invocation leaves what it measured. A variant of an algorithm is ``ALGO@LABEL`` with its own
settings: ``--algos mbrcsl,mbrcsl@small --set mbrcsl@small.hidden_dims=256,256``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from common import RESULTS_DIR, cpu_kind, parse_overrides, train_or_resume, write_result, write_text

DEFAULT_ALGOS = "mbrcsl,rvs_r,dt,iql"
MBRCSL_METRICS = ("rollouts_kept", "rollout_fallback", "rollout_rounds", "goal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pointmaze-stitch")
    parser.add_argument("--algos", default=DEFAULT_ALGOS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--workdir", default="/tmp/policyfit_bench_stitching")
    parser.add_argument("--results", default=str(RESULTS_DIR))
    args = parser.parse_args()

    from policyfit.envs.datasets import load_dataset

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = parse_overrides(args.overrides)
    t0 = time.perf_counter()
    ds = load_dataset(args.dataset)
    data = data_facts(ds)
    name = f"stitching_{cpu_kind()}"
    rows: list[dict] = []
    for seed in seeds:
        for algo in algos:
            run_dir = Path(args.workdir) / f"{algo}-{args.dataset}-s{seed}"
            summary = train_or_resume(
                algo.split("@")[0],
                ds,
                run_dir,
                steps=args.steps,
                seed=seed,
                eval_every=0,
                save_every=max(args.steps // 4, 1),
                eval_episodes=args.episodes,
                config=overrides.get(algo),
            )
            rows.append(run_row(algo, seed, run_dir, summary))
            write(name, args, algos, rows, data, time.perf_counter() - t0)


def data_facts(ds) -> dict:
    """The data's best and mean episode return and the stitched optimum (the card's reference)."""
    returns = ds.episode_returns()
    refs = ds.reference_scores()
    return {
        "data_best_return": float(returns.max()),
        "data_mean_return": float(returns.mean()),
        "episodes": int(len(returns)),
        "transitions": int(len(ds)),
        "stitched_optimum": None if refs is None else float(refs[1]),
    }


def last_train_metrics(run_dir: Path) -> dict:
    """The last ``train/...`` row of a run's metrics (MBRCSL's rollout facts live there)."""
    path = run_dir / "metrics.jsonl"
    found: dict = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if any(k.startswith("train/") for k in row):
                found = row
    return {k.removeprefix("train/"): v for k, v in found.items() if k.startswith("train/")}


def run_row(algo: str, seed: int, run_dir: Path, summary: dict) -> dict:
    row = {
        "algo": algo,
        "seed": seed,
        "return": summary["final_return_mean"],
        "normalized_score": summary.get("final_normalized_score"),
        "train_seconds": summary.get("train_seconds"),
        "run_dir": str(run_dir),
    }
    if algo.split("@")[0] == "mbrcsl":
        metrics = last_train_metrics(run_dir)
        row.update({k: metrics.get(k) for k in MBRCSL_METRICS})
    return row


def summarize(algos: list[str], rows: list[dict], data: dict) -> dict[str, dict]:
    """Per algorithm: mean return over seeds, its 95% bootstrap interval, whether it stitches."""
    from policyfit.evaluation.stats import bootstrap_ci

    out = {}
    best = data["data_best_return"]
    for algo in algos:
        vals = [r["return"] for r in rows if r["algo"] == algo and r["return"] is not None]
        if not vals:
            continue
        lo, hi = bootstrap_ci(vals, seed=0)
        out[algo] = {
            "seeds": len(vals),
            "return_mean": float(np.mean(vals)),
            "ci95": [lo, hi],
            "seeds_above_data_best": int(sum(v > best for v in vals)),
            "stitches": bool(lo > best),
        }
    return out


def claim(summary: dict[str, dict], mbrcsl: str = "mbrcsl") -> str:
    """The paper's claim in one sentence, from the intervals, for the MBRCSL variant ``mbrcsl``."""
    mb, rvs = summary.get(mbrcsl), summary.get("rvs_r")
    if mb is None or rvs is None:
        return "not measured: needs both mbrcsl and rvs_r"
    verdict = {
        (True, False): "reproduced: MBRCSL exceeds the data's best return, RvS-R does not",
        (True, True): "not separated: both MBRCSL and RvS-R exceed the data's best return",
        (False, False): "not reproduced: MBRCSL does not exceed the data's best return here",
        (False, True): "contradicted: RvS-R exceeds the data's best return, MBRCSL does not",
    }
    return verdict[(mb["stitches"], rvs["stitches"])]


def write(name: str, args, algos: list[str], rows: list[dict], data: dict, seconds: float) -> None:
    results = Path(args.results)
    summary = summarize(algos, rows, data)
    variants = [a for a in algos if a.split("@")[0] == "mbrcsl"] or ["mbrcsl"]
    claims = {v: claim(summary, v) for v in variants}
    verdict = claims[variants[0]]
    payload = {
        "dataset": args.dataset,
        "steps": args.steps,
        "episodes": args.episodes,
        "seeds": sorted({r["seed"] for r in rows}),
        "overrides": parse_overrides(args.overrides),
        "data": data,
        "summary": summary,
        "claim": verdict,
        "claims": claims,
        "seconds": round(seconds, 1),
        "rows": rows,
    }
    write_result(name, payload, directory=results)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# Trajectory stitching ({args.dataset}, cpu, {cpu_kind()})",
        "",
        f"{args.steps:,} updates per run (MBRCSL: plus its pretraining), {args.episodes} "
        f"evaluation episodes per run, seeds {payload['seeds']}. Return: mean over seeds "
        f"[95% bootstrap interval over the seeds' means]. Data: best episode return "
        f"{data['data_best_return']:.1f}, mean {data['data_mean_return']:.1f}; stitched optimum "
        f"{_fmt(data['stitched_optimum'])}. This invocation {seconds / 60:.0f} min; load average "
        f"at the end {load}.",
        "",
        "| algorithm | return | seeds above data best | stitches |",
        "|---|---|---|---|",
    ]
    from policyfit.evaluation.stats import format_interval

    for algo in algos:
        s = summary.get(algo)
        if s is None:
            continue
        interval = format_interval(s["return_mean"], *s["ci95"])
        lines.append(
            f"| {algo} | {interval} | {s['seeds_above_data_best']}/{s['seeds']} | "
            f"{'yes' if s['stitches'] else 'no'} |"
        )
    mb = [r for r in rows if r["algo"].split("@")[0] == "mbrcsl"]
    if mb:
        lines += [
            "",
            "MBRCSL's rollouts per seed:",
            "",
            "| variant | seed | kept | rounds | fallback | goal |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for r in mb:
            lines.append(
                f"| {r['algo']} | {r['seed']} | {_fmt(r['rollouts_kept'], 0)} | "
                f"{_fmt(r['rollout_rounds'], 0)} | {_fmt(r['rollout_fallback'], 0)} | "
                f"{_fmt(r['goal'])} |"
            )
    overrides = parse_overrides(args.overrides)
    lines += [""]
    for variant, text in claims.items():
        settings = ", ".join(f"{k}={v}" for k, v in overrides.get(variant, {}).items())
        lines.append(
            f"**Claim** (MBRCSL stitches where plain RCSL cannot), `{variant}`"
            f"{f' ({settings})' if settings else ''}: {text}."
        )
    lines += [
        "",
        "stitches: the interval's lower end is above the data's best episode return. kept: "
        "rollouts that passed the return filter (model return above the data's best); fallback 1: "
        "none passed and the best rollouts of the last round were used; goal: the return MBRCSL "
        "conditions on (the best kept model return).",
    ]
    write_text(results / f"{name}.md", "\n".join(lines) + "\n")
    plot(results / f"{name}.png", algos, summary, data)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def plot(path: Path, algos: list[str], summary: dict, data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policyfit.common.files import atomic_write_bytes
    from policyfit.evaluation.stats import figure_png_bytes

    shown = [a for a in algos if a in summary]
    fig, ax = plt.subplots(figsize=(6, 4))
    means = [summary[a]["return_mean"] for a in shown]
    low = [m - summary[a]["ci95"][0] for a, m in zip(shown, means, strict=True)]
    high = [summary[a]["ci95"][1] - m for a, m in zip(shown, means, strict=True)]
    errors = np.array([low, high]).reshape(2, len(shown))
    ax.bar(np.arange(len(shown)), means, yerr=errors, capsize=4, color="tab:blue")
    ax.axhline(data["data_best_return"], color="tab:red", ls="--", label="data's best episode")
    if data["stitched_optimum"] is not None:
        ax.axhline(data["stitched_optimum"], color="tab:green", ls=":", label="stitched optimum")
    ax.set_xticks(np.arange(len(shown)), shown)
    ax.set_ylabel("return (mean over seeds, 95% interval)")
    ax.set_title("Trajectory stitching on the point maze")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, figure_png_bytes(fig))
    plt.close(fig)


if __name__ == "__main__":
    main()
