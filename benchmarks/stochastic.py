"""Dichotomy of Control vs Decision Transformer where luck is in the data: bandit and FrozenLake.

    python benchmarks/stochastic.py [--seeds 3] [--steps 1000] [--episodes 2000] [--replot]
    python benchmarks/stochastic.py --task frozenlake [--steps 1000] [--every 500]

``--task bandit`` (default), two one-step tasks from :mod:`policyfit.envs.stochastic`, 1000 logged episodes each:

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

``--task frozenlake``: DoC's stochastic gridworld (:mod:`policyfit.envs.frozenlake`), gymnasium's
slippery 4 x 4 lake (a move goes the intended way one time in three) beside the deterministic
lake as the control, 1000 logged episodes per seed of the discounted lake's optimal policy mixed
with uniform moves (epsilon 0.4, the DoC code's ``alpha = -1``). DT asked for return 1 and DoC
(default) on a small model (:data:`LAKE_SMALL`); promised return at the start against the share
of episodes that reach the goal, with the exact optimal, greedy, behavior and random success
probabilities beside them. Writes ``benchmarks/results/stochastic_frozenlake_<cpu kind>.*``.
"""

from __future__ import annotations

import argparse
import io
import os
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

#: FrozenLake: the code's context (K = 20 covers most episodes, so a latent can describe the whole
#: future; with K = 4 DoC reached 0.12-0.37 in a scratch run) on a narrower, shallower trunk (the
#: code's width 128 and 3 layers run at about 1 update/s on 2 CPU cores)
LAKE_SMALL = {
    "context_length": 20,
    "embed_dim": 32,
    "n_layer": 1,
    "dropout": 0.0,
    "warmup_steps": 100,
    "learning_rate": 1e-3,
}
LAKE_METHODS = {
    "dt (target 1)": ("dt", {**LAKE_SMALL, "return_scale": 1.0, "target_return": 1.0}),
    "doc (default)": ("doc", {**LAKE_SMALL, "mlp_hidden": (64, 64)}),
}
#: success_rate of a move: gymnasium's slippery lake and the deterministic control
LAKE_SLIPS = {"frozenlake": 1 / 3, "frozenlake-deterministic": 1.0}


def train_tracked(name, config, ds, evaluate, steps, every, seed):
    """Train with a fused jitted loop; every ``every`` updates call ``evaluate(policy, algo)``
    (a dict of numbers) and append it to the curve with its step. Returns the curve."""
    import jax.numpy as jnp

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.policy import Policy
    from policyfit.algos.registry import get_algorithm

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
        curve.append({"step": (i + 1) * every, **evaluate(policy, algo)})
    return curve


def bandit_evaluator(bandit, episodes, seed):
    """Promised return (DT: its target; DoC: the value of its latent) and what the arms pay."""
    from policyfit.envs.stochastic import evaluate_bandit

    def evaluate(policy, algo):
        ev = evaluate_bandit(policy, bandit, episodes=episodes, seed=1000 + seed)
        carry = ev["carry"]
        promised = (
            float(np.mean(np.asarray(carry["value"])))
            if "value" in carry
            else float(algo.config.target_return)
        )
        return {
            "promised": promised,
            "expected_return": ev["expected_return"],
            "return_mean": ev["return_mean"],
            "best_arm_frequency": float(ev["arm_frequency"][bandit.best_arm]),
        }

    return evaluate


def lake_evaluator(task, episodes, seed):
    """Promised return (DT: its target; DoC: the value of the latent picked at the start) and the
    share of ``episodes`` that reach the goal."""
    from policyfit.envs.frozenlake import evaluate_frozenlake

    def evaluate(policy, algo):
        ev = evaluate_frozenlake(policy, task, episodes=episodes, seed=1000 + seed)
        promised = ev["first_value"]
        return {
            "promised": float(algo.config.target_return) if promised is None else promised,
            "success": ev["success"],
            "steps": ev["steps"],
            "first_moves": ev["first_moves"].round(4).tolist(),
        }

    return evaluate


def ci95(values) -> float:
    v = np.asarray(values, float)
    return float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(curves, keys):
    """Mean and 95% interval over seeds of each key at the last evaluation."""
    final = [c[-1] for c in curves]
    return {
        **{
            k: {"mean": float(np.mean([f[k] for f in final])), "ci95": ci95([f[k] for f in final])}
            for k in keys
        },
        "per_seed_final": final,
        "curves": curves,
    }


def method_rows(methods: dict, keys) -> list[str]:
    """Markdown rows ``| method | mean ± ci95 | ... |`` of :func:`summarize` results."""
    return [
        f"| {label} | "
        + " | ".join(f"{row[k]['mean']:.3f} ± {row[k]['ci95']:.3f}" for k in keys)
        + " |"
        for label, row in methods.items()
    ]


def plot(result: dict, path: Path, achieved="expected_return", reference="best_arm_return"):
    """Promised against achieved return per method, one panel per task."""
    from policyfit.common.files import atomic_write_bytes
    from policyfit.report.plots import COLORS, _figure

    tasks = list(result["tasks"])
    fig = _figure(4.2 * len(tasks), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(tasks)))
    for ax, task in zip(axes, tasks, strict=True):
        rows = result["tasks"][task]["methods"]
        names = list(rows)
        x = np.arange(len(names))
        got = [rows[n][achieved]["mean"] for n in names]
        err = [rows[n][achieved]["ci95"] for n in names]
        promised = [rows[n]["promised"]["mean"] for n in names]
        ax.bar(x - 0.2, promised, 0.4, color=COLORS[1], label="promised")
        ax.bar(x + 0.2, got, 0.4, yerr=err, color=COLORS[0], label="achieved")
        ax.axhline(result["tasks"][task][reference], color="k", lw=0.8, ls="--")
        if "behavior_success" in result["tasks"][task]:
            ax.axhline(result["tasks"][task]["behavior_success"], color="gray", lw=0.8, ls=":")
        ax.set_xticks(x, [SHORT.get(n, n) for n in names], fontsize=8)
        ax.set_title(task)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("return")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def run_bandits(args) -> tuple[dict, list[str]]:
    from policyfit.envs.stochastic import DOC_BANDIT, LUCKY_BANDIT, bernoulli_bandit_dataset

    keys = ("promised", "expected_return", "return_mean", "best_arm_frequency")
    tasks = {}
    for bandit in (DOC_BANDIT, LUCKY_BANDIT):
        methods = {}
        for label, (name, config) in METHODS.items():
            curves = []
            for seed in range(args.seeds):
                ds = bernoulli_bandit_dataset(bandit, episodes=args.data_episodes, seed=seed)
                evaluate = bandit_evaluator(bandit, args.episodes, seed)
                curves.append(
                    train_tracked(name, config, ds, evaluate, args.steps, args.every, seed)
                )
                print(f"{bandit.name} {label} seed {seed}: {curves[-1][-1]}", flush=True)
            methods[label] = {"algo": name, "config": config, **summarize(curves, keys)}
        tasks[bandit.name] = {
            "arm_probs": list(bandit.probs),
            "behavior_probs": list(bandit.behavior),
            "success_posterior": bandit.success_posterior().round(4).tolist(),
            "best_arm_return": float(max(bandit.probs)),
            "methods": methods,
        }
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
        lines += method_rows(info["methods"], keys) + [""]
    return tasks, lines


def run_lake(args) -> tuple[dict, list[str]]:
    from policyfit.envs.frozenlake import FrozenLakeTask, frozenlake_dataset

    keys = ("promised", "success", "steps")
    tasks = {}
    for lake, success_rate in LAKE_SLIPS.items():
        task = FrozenLakeTask(lake, success_rate)
        methods = {}
        data_success = []
        for label, (name, config) in LAKE_METHODS.items():
            curves = []
            for seed in range(args.seeds):
                ds = frozenlake_dataset(task, episodes=args.data_episodes, seed=seed)
                data_success.append(ds.metadata["card"]["data_success"])
                evaluate = lake_evaluator(task, args.episodes, seed)
                curves.append(
                    train_tracked(name, config, ds, evaluate, args.steps, args.every, seed)
                )
                print(f"{lake} {label} seed {seed}: {curves[-1][-1]}", flush=True)
            methods[label] = {"algo": name, "config": config, **summarize(curves, keys)}
        tasks[lake] = {
            "success_rate": success_rate,
            "optimal_success": task.optimal_success(),
            "greedy_success": task.success(task.optimal_policy()),
            "behavior_success": task.behavior_success(),
            "random_success": task.random_success(),
            "data_success_mean": float(np.mean(data_success)),
            "methods": methods,
        }
    lines = [
        "# DoC vs DT on FrozenLake (DoC's stochastic gridworld)",
        "",
        f"{args.seeds} seeds, {args.steps} updates, {args.data_episodes} logged episodes per seed "
        "(the discounted lake's optimal policy mixed with uniform moves at epsilon 0.4, as the DoC "
        f"code's data), {args.episodes} evaluation episodes; mean ± 95% interval over seeds. "
        "*promised*: DT's target return / the value DoC predicts for the latent it picks at the "
        "start; *success*: the share of evaluation episodes that reach the goal within 100 steps. "
        f"Model: {LAKE_SMALL} (DoC's MLPs 64 x 64). The references are exact (dynamic "
        "programming on the lake's transition table).",
        "",
    ]
    for lake, info in tasks.items():
        lines += [
            f"## {lake}: a move succeeds with probability {info['success_rate']:.3f}",
            "",
            f"Optimal {info['optimal_success']:.3f}, greedy (the behavior without its noise) "
            f"{info['greedy_success']:.3f}, behavior {info['behavior_success']:.3f} (data "
            f"{info['data_success_mean']:.3f}), random {info['random_success']:.3f}.",
            "",
            "| method | promised | success | episode length |",
            "|---|---|---|---|",
        ]
        lines += method_rows(info["methods"], keys) + [""]
    return tasks, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="examples:\n  python benchmarks/stochastic.py\n"
        "  python benchmarks/stochastic.py --task frozenlake --steps 1000 --every 500",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=("bandit", "frozenlake"), default="bandit")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=500, help="updates between evaluations")
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="evaluation episodes (default 2000 for the bandit, 500 for the lake)",
    )
    p.add_argument("--data-episodes", type=int, default=1000)
    p.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON")
    args = p.parse_args(argv)
    if args.episodes is None:
        args.episodes = 2000 if args.task == "bandit" else 500
    lake = args.task == "frozenlake"
    name = f"stochastic_{'frozenlake_' if lake else ''}{cpu_kind()}"
    axes = ("success", "optimal_success") if lake else ("expected_return", "best_arm_return")
    if args.replot:
        import json

        result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        plot(result, RESULTS_DIR / f"{name}.png", *axes)
        return 0

    start = time.time()
    tasks, lines = run_lake(args) if lake else run_bandits(args)
    result = {
        "settings": {**vars(args), "data_episodes_per_seed": args.data_episodes},
        "tasks": tasks,
        "wall_s": round(time.time() - start, 1),
        "load_average": list(os.getloadavg()),
    }
    write_result(name, result)
    lines.append(
        f"Wall time {result['wall_s']:.0f} s (load average at the end "
        f"{result['load_average'][0]:.1f} on {os.cpu_count()} cores)."
    )
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    plot(result, RESULTS_DIR / f"{name}.png", *axes)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
