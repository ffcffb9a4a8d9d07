"""Dichotomy of Control vs Decision Transformer where luck is in the data: the Bernoulli bandit.

    python benchmarks/stochastic.py [--seeds 3] [--steps 1000] [--episodes 2000] [--replot]

Two one-step tasks from :mod:`policyfit.envs.stochastic`, 1000 logged episodes each:

* ``doc-bandit``: the DoC code's bandit (arms pay 0.1 / 0.9, behavior 0.9 / 0.1): among the
  successes both arms are equally frequent, so the action DT regresses for reward 1 is a tie and
  the arm it pulls is down to noise (per seed 0.1 or 0.9; 0.5 on average);
* ``lucky-bandit``: arms 0.2 / 0.8, behavior 0.9 / 0.1: 69% of the successes are the worse arm's.

Methods, all on the same small transformer (K = 1, width 16, one layer; the papers' widths are
for long-horizon tasks): DT with ``target_return = 1`` (the best return in the data), DoC with the
defaults (separable InfoNCE critic, the paper's min-max sign) and DoC with the official code's
energy and sign (``critic = "code"``, ``mi_minmax = False``); see :mod:`policyfit.algos.doc`.
Per seed: the return each method is *promised* (DT: its target; DoC: the value of the latent it
chose) against the return it *gets* (the mean success probability of the pulled arms, i.e. without
sampling noise, and the sampled mean), checked along training. Writes
``benchmarks/results/stochastic_<cpu kind>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402

SMALL = {"context_length": 1, "embed_dim": 16, "n_layer": 1, "dropout": 0.0, "warmup_steps": 10}
DOC = {**SMALL, "mlp_hidden": (32, 32), "learning_rate": 3e-3}
METHODS = {
    "dt (target 1)": (
        "dt",
        {**SMALL, "learning_rate": 3e-3, "return_scale": 1.0, "target_return": 1.0},
    ),
    "doc (default: separable critic, min-max)": ("doc", DOC),
    "doc (the code's critic and sign)": ("doc", {**DOC, "critic": "code", "mi_minmax": False}),
}

#: plot labels
SHORT = {
    "dt (target 1)": "DT (target 1)",
    "doc (default: separable critic, min-max)": "DoC",
    "doc (the code's critic and sign)": "DoC, code's\ncritic and sign",
}


def train_tracked(name, config, ds, bandit, steps, every, seed, episodes):
    """Train with a fused jitted loop; evaluate every ``every`` updates. Returns the curve."""
    import jax.numpy as jnp

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.policy import Policy
    from policyfit.algos.registry import get_algorithm
    from policyfit.envs.stochastic import evaluate_bandit

    cls = get_algorithm(name)
    algo = cls(cls.Config.from_dict(config, algo=name))
    spec = DatasetSpec.from_dataset(ds)
    key = jax.random.PRNGKey(seed)
    state = algo.init(spec, key)
    sampler = algo.make_sampler(ds, spec)
    batch_size = algo.config.batch_size

    @jax.jit
    def chunk(state, key):
        def body(state, k):
            kb, ku = jax.random.split(k)
            batch = sampler.sample(sampler.data, kb, batch_size)
            state, _ = algo.update(state, batch, ku)
            return state, None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, every))
        return state

    curve = []
    for i in range(steps // every):
        key, sub = jax.random.split(key)
        state = chunk(state, sub)
        policy = Policy(algo, jax.tree_util.tree_map(jnp.asarray, algo.policy_params(state)), spec)
        ev = evaluate_bandit(policy, bandit, episodes=episodes, seed=1000 + seed)
        carry = ev["carry"]
        promised = (
            float(np.mean(np.asarray(carry["value"])))
            if name == "doc"
            else float(algo.config.target_return)
        )
        curve.append(
            {
                "step": (i + 1) * every,
                "promised": promised,
                "expected_return": ev["expected_return"],
                "return_mean": ev["return_mean"],
                "best_arm_frequency": float(ev["arm_frequency"][bandit.best_arm]),
            }
        )
    return curve


def ci95(values) -> float:
    v = np.asarray(values, float)
    return float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def plot(result: dict, path: Path) -> None:
    from policyfit.common.files import atomic_write_bytes
    from policyfit.report.plots import COLORS, _figure

    tasks = list(result["tasks"])
    fig = _figure(4.2 * len(tasks), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(tasks)))
    for ax, task in zip(axes, tasks, strict=True):
        rows = result["tasks"][task]["methods"]
        names = list(rows)
        x = np.arange(len(names))
        got = [rows[n]["expected_return"]["mean"] for n in names]
        err = [rows[n]["expected_return"]["ci95"] for n in names]
        promised = [rows[n]["promised"]["mean"] for n in names]
        ax.bar(x - 0.2, promised, 0.4, color=COLORS[1], label="promised")
        ax.bar(x + 0.2, got, 0.4, yerr=err, color=COLORS[0], label="achieved (expected)")
        ax.axhline(result["tasks"][task]["best_arm_return"], color="k", lw=0.8, ls="--")
        ax.set_xticks(x, [SHORT.get(n, n) for n in names], fontsize=8)
        ax.set_title(task)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("return")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=500, help="updates between evaluations")
    p.add_argument("--episodes", type=int, default=2000, help="evaluation episodes")
    p.add_argument("--data-episodes", type=int, default=1000)
    p.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON")
    args = p.parse_args(argv)
    name = f"stochastic_{cpu_kind()}"
    if args.replot:
        import json

        plot(json.loads((RESULTS_DIR / f"{name}.json").read_text()), RESULTS_DIR / f"{name}.png")
        return 0

    from policyfit.envs.stochastic import DOC_BANDIT, LUCKY_BANDIT, bernoulli_bandit_dataset

    start = time.time()
    tasks = {}
    for bandit in (DOC_BANDIT, LUCKY_BANDIT):
        methods = {}
        for label, (name, config) in METHODS.items():
            curves = []
            for seed in range(args.seeds):
                ds = bernoulli_bandit_dataset(bandit, episodes=args.data_episodes, seed=seed)
                curves.append(
                    train_tracked(
                        name, config, ds, bandit, args.steps, args.every, seed, args.episodes
                    )
                )
                print(f"{bandit.name} {label} seed {seed}: {curves[-1][-1]}", flush=True)
            final = [c[-1] for c in curves]
            methods[label] = {
                "algo": name,
                "config": config,
                **{
                    k: {
                        "mean": float(np.mean([f[k] for f in final])),
                        "ci95": ci95([f[k] for f in final]),
                    }
                    for k in ("promised", "expected_return", "return_mean", "best_arm_frequency")
                },
                "per_seed_final": final,
                "curves": curves,
            }
        tasks[bandit.name] = {
            "arm_probs": list(bandit.probs),
            "behavior_probs": list(bandit.behavior),
            "success_posterior": bandit.success_posterior().round(4).tolist(),
            "best_arm_return": float(max(bandit.probs)),
            "methods": methods,
        }
    result = {
        "settings": {**vars(args), "data_episodes_per_seed": args.data_episodes},
        "tasks": tasks,
        "wall_s": round(time.time() - start, 1),
    }
    write_result(name, result)
    lines = [
        "# DoC vs DT on the Bernoulli bandit",
        "",
        f"{args.seeds} seeds, {args.steps} updates, {args.data_episodes} logged episodes, "
        f"{args.episodes} evaluation episodes; mean ± 95% interval over seeds. *promised*: DT's "
        "target return / the value DoC predicts for the latent it picks; *achieved*: the mean "
        "success probability of the pulled arms.",
        "",
    ]
    for task, info in tasks.items():
        lines += [
            f"## {task}: arms {info['arm_probs']}, behavior {info['behavior_probs']}, "
            f"P(arm | r=1) = {info['success_posterior']}",
            "",
            "| method | promised | achieved | sampled return | best-arm share |",
            "|---|---|---|---|---|",
        ]
        for label, row in info["methods"].items():
            cells = [
                f"{row[k]['mean']:.3f} ± {row[k]['ci95']:.3f}"
                for k in ("promised", "expected_return", "return_mean", "best_arm_frequency")
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Wall time {result['wall_s']:.0f} s.")
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    plot(result, RESULTS_DIR / f"{name}.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
