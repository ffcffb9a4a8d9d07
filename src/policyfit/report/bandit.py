"""The bandit part of the report: logged bandit feedback and the generations loop.

``policyfit report logs.npz`` (a file of OBP-shaped bandit feedback) gives a section with the
logs' size, reward and propensity summaries, a per-action table and the propensity and action
plots — what decides whether off-policy evaluation can be trusted (tiny propensities mean huge
importance weights; an action the logger never tried cannot be evaluated). ``policyfit report
sim/generations.json`` (from ``policyfit bandit simulate --out sim``) gives the generations
figure and table. :func:`is_bandit_feedback_file` and :func:`is_generations_file` sniff them.

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
from policyfit.report.plots import COLORS, _draw, _figure, figure_png

FEEDBACK_KEYS = {"action", "reward", "pscore"}


def is_bandit_feedback_file(path: str | Path) -> bool:
    """An ``.npz`` holding OBP's bandit-feedback keys (not a dataset's)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return set(z.files) >= FEEDBACK_KEYS and "observations" not in z.files
    except (OSError, ValueError):
        return False


def is_generations_file(path: str | Path) -> bool:
    """The JSON that ``policyfit bandit simulate --out`` writes."""
    import json

    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"config", "variants"} <= set(data)


def feedback_summary(fb: Any) -> dict[str, Any]:
    """The numbers the report shows for logged bandit feedback."""
    p = np.asarray(fb.pscore, dtype=np.float64)
    w = 1.0 / p
    counts = np.bincount(fb.action, minlength=fb.n_actions)
    per_action = []
    for a in range(fb.n_actions):
        rows = fb.action == a
        per_action.append(
            {
                "action": a,
                "rounds": int(counts[a]),
                "share": float(counts[a] / fb.n_rounds),
                "reward_mean": float(fb.reward[rows].mean()) if counts[a] else None,
                "pscore_mean": float(p[rows].mean()) if counts[a] else None,
            }
        )
    return {
        "rounds": fb.n_rounds,
        "actions": fb.n_actions,
        "context_dim": int(fb.context.shape[1]),
        "positions": int(len(np.unique(fb.position))),
        "reward_mean": float(np.mean(fb.reward)),
        "pscore_min": float(p.min()),
        "pscore_median": float(np.median(p)),
        "pscore_max": float(p.max()),
        "max_importance_weight": float(w.max()),
        "actions_never_logged": [a for a in range(fb.n_actions) if counts[a] == 0],
        "per_action": per_action,
    }


def _pscore_png(p: np.ndarray) -> str:
    def draw(ax) -> None:
        ax.hist(np.log10(p), bins=40, color=COLORS[0], alpha=0.85)
        ax.set_xlabel("log10 propensity of the logged action")
        ax.set_ylabel("rounds")

    return _draw(5.0, 3.0, draw)


def _actions_png(summary: dict[str, Any]) -> str:
    def draw(ax) -> None:
        rows = summary["per_action"]
        x = np.arange(len(rows))
        ax.bar(x, [r["share"] for r in rows], color=COLORS[0], alpha=0.85, label="share of rounds")
        ax.set_xlabel("action")
        ax.set_ylabel("share of rounds")
        ax2 = ax.twinx()
        means = [np.nan if r["reward_mean"] is None else r["reward_mean"] for r in rows]
        ax2.plot(x, means, "o", color=COLORS[1], label="mean reward")
        ax2.set_ylabel("mean reward when logged")

    return _draw(5.0, 3.0, draw)


def feedback_section(fb: Any, index: int, table, figure, esc) -> str:
    """HTML for one file of logged bandit feedback (``table``/``figure``/``esc`` from the page)."""
    s = feedback_summary(fb)
    never = s["actions_never_logged"]
    rows = [
        ("rounds", f"{s['rounds']:,}"),
        ("actions", s["actions"]),
        ("context dimension", s["context_dim"]),
        ("positions (slots)", s["positions"]),
        ("mean reward", f"{s['reward_mean']:.6g}"),
        (
            "propensity min / median / max",
            f"{s['pscore_min']:.3g} / {s['pscore_median']:.3g} / {s['pscore_max']:.3g}",
        ),
        (
            "largest importance weight of a uniform target (1/pscore)",
            f"{s['max_importance_weight']:.4g}",
        ),
        ("actions never logged", ", ".join(map(str, never)) if never else "none"),
    ]
    per_action = table(
        ["action", "rounds", "share", "mean reward", "mean propensity"],
        [
            (
                r["action"],
                f"{r['rounds']:,}",
                f"{r['share']:.3f}",
                "-" if r["reward_mean"] is None else f"{r['reward_mean']:.4g}",
                "-" if r["pscore_mean"] is None else f"{r['pscore_mean']:.3g}",
            )
            for r in s["per_action"]
        ],
        [False, True, True, True, True],
    )
    warn = (
        f'<p class="note">Actions {esc(", ".join(map(str, never)))} were never logged: no '
        "estimator can evaluate a policy that plays them.</p>"
        if never
        else ""
    )
    return (
        f'<section id="bandit-{index}"><h2>Bandit logs: {esc(fb.source)}</h2>'
        + table(["logged feedback", ""], rows, [False, True])
        + warn
        + per_action
        + figure(
            _pscore_png(np.asarray(fb.pscore)),
            "propensities of the logged actions",
            f"bandit-pscore-{index}",
        )
        + figure(
            _actions_png(s), "actions: share of rounds and mean reward", f"bandit-actions-{index}"
        )
        + "</section>"
    )


def generations_section(result: dict[str, Any], index: int, figure, esc) -> str:
    """HTML for a generations result (``policyfit bandit simulate --out``)."""
    cfg = result["config"]
    uri = figure_png(_generations_figure({f"gamma = {cfg['gamma']:g}": result}))
    head = "".join(f"<th>g{g}</th>" for g in range(cfg["generations"]))
    rows = ""
    for name in result["variants"]:
        mean, _ = _curve(result, name)
        cells = "".join(f'<td class="num">{v:.3f}</td>' for v in mean)
        rows += f'<tr><td>{esc(name)}</td>{cells}<td class="num">{worst_drop(mean):.3f}</td></tr>'
    caption = "expected authorization rate per generation (mean +- SE over seeds)"
    return (
        f'<section id="generations-{index}"><h2>Bandit generations: {cfg["generations"]} x '
        f"{cfg['rounds']:,} decisions, gamma {cfg['gamma']:g}, seeds {esc(cfg['seeds'])}</h2>"
        + figure(uri, caption, f"generations-{index}")
        + f"<table><thead><tr><th>variant</th>{head}<th>worst drop</th></tr></thead>"
        + f"<tbody>{rows}</tbody></table></section>"
    )


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


def _generations_figure(results: dict[str, dict[str, Any]]):
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
    return fig


def generations_png(results: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One panel per result (e.g. per gamma): expected reward per generation, mean +- SE over
    seeds, one line per variant, the optimum dashed."""
    import io

    buf = io.BytesIO()
    _generations_figure(results).savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(Path(path), buf.getvalue())
