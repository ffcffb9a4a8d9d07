"""DPT on the paper's bandit: pretrain, then online cumulative regret and offline suboptimality.

    python benchmarks/dpt_bandit.py [--horizon 50] [--steps 6000] [--tasks 200]

Pretrains :mod:`policyfit.bandit.dpt` (checkpointed under ``$POLICYFIT_HOME/dpt/``: a killed run
resumes) and evaluates it on ``--tasks`` held-out bandits against the paper's baselines — online:
empirical mean, UCB, Thompson sampling; offline: empirical mean, LCB, Thompson sampling — with 95%
intervals over tasks. Horizon and pretraining are scaled to a 2-core CPU (the paper: horizon 500,
100,000 fixed tasks, far more updates); the JSON says what ran. Writes
``benchmarks/results/dpt_bandit_<cpu kind>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402


def plot(result: dict, path: Path) -> None:
    from policyfit.common.files import atomic_write_bytes
    from policyfit.report.plots import COLORS, _figure

    fig = _figure(9.0, 3.4)
    axes = fig.subplots(1, 2)
    for ax, key, ylabel in (
        (axes[0], "online_cumulative_regret", "cumulative regret (online)"),
        (axes[1], "offline_suboptimality", "suboptimality (offline)"),
    ):
        for i, (name, curve) in enumerate(result[key].items()):
            mean, half = np.array(curve["mean"]), np.array(curve["ci95"])
            x = np.arange(1, len(mean) + 1) if key.startswith("online") else np.arange(len(mean))
            ax.plot(x, mean, color=COLORS[i], label=name)
            ax.fill_between(x, mean - half, mean + half, color=COLORS[i], alpha=0.2, lw=0)
        ax.set_xlabel("pulls" if key.startswith("online") else "logged pulls seen")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    from policyfit.bandit.dpt import DPTConfig, evaluate, train_dpt
    from policyfit.paths import home

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = DPTConfig(horizon=args.horizon, steps=args.steps, learning_rate=args.lr, seed=args.seed)
    # no step count in the name: a longer --steps continues the same run exactly
    ckpt = home() / "dpt" / f"h{cfg.horizon}-lr{cfg.learning_rate:g}-seed{cfg.seed}.msgpack"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    params, losses = train_dpt(cfg, progress=sys.stderr.isatty(), checkpoint=str(ckpt))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = evaluate(params, cfg, n_tasks=args.tasks, seed=1)
    eval_s = time.perf_counter() - t0
    name = f"dpt_bandit_{cpu_kind()}"
    write_result(
        name,
        {
            "config": cfg.to_dict(),
            "paper": {"horizon": 500, "pretraining_tasks": 100_000, "lr": 1e-4, "epochs": "<=1000"},
            "train_seconds_this_process": train_s,
            "eval_seconds": eval_s,
            "loss_per_100_steps": losses,
            **result,
        },
    )
    plot(result, RESULTS_DIR / f"{name}.png")
    on, off = result["online_cumulative_regret"], result["offline_suboptimality"]
    lines = [
        f"# DPT on the 5-armed Gaussian bandit ({cpu_kind()})",
        "",
        f"Horizon {cfg.horizon} (paper 500), {cfg.steps:,} pretraining steps of {cfg.batch_size} "
        f"fresh bandits (lr {cfg.learning_rate:g}); evaluated on {args.tasks} held-out bandits; "
        "mean and 95% interval over tasks. Final pretraining loss "
        f"{losses[-1]:.3f} (first {losses[0]:.3f}).",
        "",
        f"![DPT]({name}.png)",
        "",
        f"| online | cumulative regret after {cfg.horizon} pulls |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v['mean'][-1]:.2f} +- {v['ci95'][-1]:.2f} |" for k, v in on.items()]
    picks = [n for n in (1, 5, 10, 25, cfg.horizon) if n <= cfg.horizon]
    lines += [
        "",
        "| offline | " + " | ".join(f"after {n} pulls" for n in picks) + " |",
        "|---" * (len(picks) + 1) + "|",
    ]
    lines += [
        f"| {k} | " + " | ".join(f"{v['mean'][n]:.3f} +- {v['ci95'][n]:.3f}" for n in picks) + " |"
        for k, v in off.items()
    ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
