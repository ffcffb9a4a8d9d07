"""Figures and tables for contextual-bandit results (the generations loop).

Example:
    >>> from policyfit.bandit.simulate import PaymentEnv, simulate
    >>> out = simulate(PaymentEnv(), ["naive"], generations=2, rounds=500, seeds=[0],
    ...                progress=False)
    >>> generations_table(out).splitlines()[0]
    '| variant | g0 | g1 | mean g1.. | worst drop |'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import atomic_write_bytes
from policyfit.report.plots import COLORS, _figure


def _curve(result: dict[str, Any], variant: str, metric: str = "expected_reward"):
    values = np.array(result["variants"][variant][metric], dtype=np.float64)  # [seeds, G]
    mean = values.mean(axis=0)
    se = values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * mean
    return mean, se


def worst_drop(mean: np.ndarray) -> float:
    """The largest fall of a generation below the best earlier learned generation (from g1 on)."""
    drops = [float(np.max(mean[1:g]) - mean[g]) for g in range(2, len(mean))]
    return max([0.0, *drops])


def generations_table(result: dict[str, Any]) -> str:
    """A markdown table: expected reward per generation (mean over seeds) per variant."""
    generations = result["config"]["generations"]
    head = "| variant | " + " | ".join(f"g{g}" for g in range(generations))
    lines = [head + " | mean g1.. | worst drop |", "|---" * (generations + 3) + "|"]
    for name in result["variants"]:
        mean, _ = _curve(result, name)
        cells = " | ".join(f"{v:.3f}" for v in mean)
        lines.append(f"| {name} | {cells} | {mean[1:].mean():.3f} | {worst_drop(mean):.3f} |")
    return "\n".join(lines)


def generations_png(results: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One panel per result (e.g. per gamma): expected reward per generation, mean +- SE over
    seeds, one line per variant, the optimum dashed."""
    import io

    n = len(results)
    fig = _figure(4.2 * n, 3.4)
    axes = fig.subplots(1, n, squeeze=False, sharey=True)[0]
    for ax, (title, result) in zip(axes, results.items(), strict=True):
        gens = np.arange(result["config"]["generations"])
        for i, name in enumerate(result["variants"]):
            mean, se = _curve(result, name)
            color = COLORS[i % len(COLORS)]
            ax.plot(gens, mean, marker="o", ms=3, color=color, label=name)
            ax.fill_between(gens, mean - se, mean + se, color=color, alpha=0.2, lw=0)
        best, _ = _curve(result, next(iter(result["variants"])), "optimal_reward")
        ax.plot(gens, best, ls="--", color="gray", lw=1, label="best action")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("authorization rate (expected)")
    axes[-1].legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(Path(path), buf.getvalue())
