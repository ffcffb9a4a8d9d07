"""Does Fitted Q Evaluation rank policies like their true returns do?

Several deterministic policies of different quality on one suite environment (Hopper-v5 by
default): the shipped behavior snapshots (``random``, ``medium``, ``expert``, acting by their mean
action) plus three derived policies (the mean of the expert's and the medium policy's actions, the
expert's actions halved, and the expert's actions negated). Each is

* evaluated by FQE (:func:`policyfit.evaluation.ope.fitted_q_evaluation`) on one logged dataset, the
  suite's ``random``, ``medium`` and ``expert`` datasets concatenated (sampled actions), and
* rolled out in the simulator for its true undiscounted return, discounted return (same gamma as
  FQE) and normalized score.

The result is the Spearman rank correlation between FQE estimates and true values, the absolute
errors, and a scatter plot; written to ``benchmarks/results/ope_validation.json`` (+ ``.png``).

Run: ``.venv/bin/python benchmarks/ope_validation.py [--iterations 20000] [--size 20000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, write_result  # noqa: E402
from policyfit.common.files import atomic_write  # noqa: E402


def true_returns(policy, env_id: str, episodes: int, gamma: float, seed: int) -> dict[str, float]:
    """Undiscounted and discounted returns of a deterministic policy, ``episodes`` at once."""
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(episodes)])
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    ret = np.zeros(episodes)
    disc = np.zeros(episodes)
    length = np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    t = 0
    while running.any():
        action = np.asarray(policy(np.asarray(obs, np.float32)), np.float64)
        obs, reward, term, trunc, _ = envs.step(action.reshape(episodes, -1))
        ret += np.where(running, reward, 0.0)
        disc += np.where(running, gamma**t * reward, 0.0)
        length += running
        running &= ~(term | trunc)
        t += 1
    envs.close()
    return {
        "return_mean": float(ret.mean()),
        "return_std": float(ret.std()),
        "discounted_return_mean": float(disc.mean()),
        "length_mean": float(length.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--size", type=int, default=20_000, help="transitions per dataset part")
    parser.add_argument("--iterations", type=int, default=30_000)
    parser.add_argument("--target-update-every", type=int, default=20)
    parser.add_argument("--hidden", default="128,128")
    parser.add_argument("--bootstrap", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policies", default=None, help="comma-separated subset (exploration)")
    parser.add_argument("--no-write", action="store_true", help="print only; keep results")
    args = parser.parse_args()

    from scipy.stats import spearmanr

    from policyfit.data import Dataset
    from policyfit.envs.registry import get_env_spec, normalized_score
    from policyfit.envs.shipped import load_behavior_policy
    from policyfit.envs.suite import make_dataset
    from policyfit.evaluation.ope import FQEConfig, fitted_q_evaluation

    env_id = get_env_spec(args.env).env_id
    short = get_env_spec(args.env).short_name
    t0 = time.perf_counter()
    parts = [
        make_dataset(f"{short}-{kind}", size=args.size, seed=args.seed, progress=False)
        for kind in ("random", "medium", "expert")
    ]
    ds = Dataset.concatenate(parts)
    data_seconds = time.perf_counter() - t0

    base = {k: load_behavior_policy(env_id, k) for k in ("random", "medium", "expert")}
    policies = {
        "expert": base["expert"],
        "medium": base["medium"],
        "random": base["random"],
        "blend(expert,medium)": lambda o: 0.5 * base["expert"](o) + 0.5 * base["medium"](o),
        "expert/2": lambda o: 0.5 * base["expert"](o),
        "-expert": lambda o: -base["expert"](o),
    }
    if args.policies:
        policies = {k: v for k, v in policies.items() if k in args.policies.split(",")}
    cfg = FQEConfig(
        iterations=args.iterations,
        target_update_every=args.target_update_every,
        hidden_dims=tuple(int(h) for h in args.hidden.split(",")),
        bootstrap=args.bootstrap,
    )
    rows = []
    for name, policy in policies.items():
        t1 = time.perf_counter()
        truth = true_returns(policy, env_id, args.episodes, cfg.discount, seed=10_000 + args.seed)
        t2 = time.perf_counter()
        est = fitted_q_evaluation(ds, policy, config=cfg, seed=args.seed, env_id=env_id)
        t3 = time.perf_counter()
        row = {
            "policy": name,
            "true_return": truth["return_mean"],
            "true_return_std": truth["return_std"],
            "true_discounted_return": truth["discounted_return_mean"],
            "true_length": truth["length_mean"],
            "true_normalized_score": float(normalized_score(env_id, truth["return_mean"])),
            "fqe_value": est.value,
            "fqe_value_ci": list(est.value_ci),
            "fqe_return_estimate": est.return_estimate,
            "fqe_return_ci": list(est.return_ci),
            "fqe_length_estimate": est.episode_length,
            "fqe_normalized_score": est.normalized_score,
            "fqe_normalized_ci": list(est.normalized_ci) if est.normalized_ci else None,
            "fqe_final_td_loss": est.final_td_loss,
            "fqe_in_bounds": est.in_bounds,
            "rollout_seconds": t2 - t1,
            "fqe_seconds": t3 - t2,
        }
        rows.append(row)
        print(
            f"{name:>22}: true R {row['true_return']:8.1f} (disc {row['true_discounted_return']:7.1f}, "
            f"len {row['true_length']:6.1f}) | FQE J {row['fqe_value']:7.1f} "
            f"[{est.value_ci[0]:.1f}, {est.value_ci[1]:.1f}] R^ {row['fqe_return_estimate']:8.1f} "
            f"len^ {row['fqe_length_estimate']:6.1f} ({row['fqe_seconds']:.0f}s)",
            flush=True,
        )

    def rho(a: str, b: str) -> float:
        return float(spearmanr([r[a] for r in rows], [r[b] for r in rows]).statistic)

    correlations = {
        "spearman_fqe_value_vs_true_discounted": rho("fqe_value", "true_discounted_return"),
        "spearman_fqe_value_vs_true_return": rho("fqe_value", "true_return"),
        "spearman_fqe_return_vs_true_return": rho("fqe_return_estimate", "true_return"),
    }
    inside = [r for r in rows if r["fqe_in_bounds"]]
    if len(inside) >= 3:
        correlations["spearman_fqe_value_vs_true_discounted_in_bounds"] = float(
            spearmanr(
                [r["fqe_value"] for r in inside], [r["true_discounted_return"] for r in inside]
            ).statistic
        )
    abs_disc = [abs(r["fqe_value"] - r["true_discounted_return"]) for r in rows]
    abs_norm = [abs(r["fqe_normalized_score"] - r["true_normalized_score"]) for r in rows]
    errors = {
        "mean_abs_error_discounted": float(np.mean(abs_disc)),
        "median_abs_error_discounted": float(np.median(abs_disc)),
        "mean_abs_error_normalized": float(np.mean(abs_norm)),
        "median_abs_error_normalized": float(np.median(abs_norm)),
        "out_of_bounds_policies": [r["policy"] for r in rows if not r["fqe_in_bounds"]],
    }
    print(correlations, errors)
    if args.no_write:
        return
    png = RESULTS_DIR / "ope_validation.png"
    _plot(rows, correlations, env_id, png)
    path = write_result(
        "ope_validation",
        {
            "env_id": env_id,
            "dataset": {
                "parts": [p.source for p in parts],
                "transitions": len(ds),
                "episodes": ds.num_episodes,
                "seconds": data_seconds,
            },
            "fqe_config": cfg.to_dict(),
            "episodes_per_policy": args.episodes,
            "policies": rows,
            **correlations,
            **errors,
            "plot": str(png.relative_to(RESULTS_DIR.parent.parent)),
            "seconds": time.perf_counter() - t0,
        },
    )
    print(f"wrote {path}")


def _plot(rows, correlations, env_id: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    x = np.array([r["true_discounted_return"] for r in rows])
    y = np.array([r["fqe_value"] for r in rows])
    lo_ci = np.array([r["fqe_value_ci"][0] for r in rows])
    hi_ci = np.array([r["fqe_value_ci"][1] for r in rows])
    # Keep the axes on the true values' range; estimates far outside it are drawn at the edge.
    span = max(x.max() - x.min(), 1.0)
    y_lo, y_hi = x.min() - 0.5 * span, x.max() + 0.5 * span
    shown = np.clip(y, y_lo, y_hi)
    ax.errorbar(
        x,
        shown,
        yerr=[
            np.clip(shown - np.clip(lo_ci, y_lo, y_hi), 0, None),
            np.clip(np.clip(hi_ci, y_lo, y_hi) - shown, 0, None),
        ],
        fmt="o",
        capsize=3,
    )
    for r, xi, yi, si in zip(rows, x, y, shown, strict=True):
        label = r["policy"] if yi == si else f"{r['policy']} (J={yi:.0f}, off scale)"
        ax.annotate(label, (xi, si), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.plot([y_lo, y_hi], [y_lo, y_hi], ls=":", color="gray", lw=1)
    ax.set_ylim(y_lo - 0.05 * span, y_hi + 0.05 * span)
    ax.set_xlabel("true discounted return (rollouts)")
    ax.set_ylabel("FQE estimate J (γ = 0.99)")
    rho = correlations["spearman_fqe_value_vs_true_discounted"]
    ax.set_title(f"FQE on {env_id}: Spearman ρ = {rho:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
