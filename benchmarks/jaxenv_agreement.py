"""Do the gymnax ports and the reference environments agree on the returns of the same policy?

    python benchmarks/jaxenv_agreement.py [--envs cartpole,breakout,...] [--episodes 200]

The discrete suite's data come from the gymnax ports (jitted); ``policyfit eval`` and the trainer
evaluate in the reference environments (gymnasium's classic control; the ``minatar`` package,
registered as ``policyfit/<Game>-MinAtar-v1`` with no sticky actions and the minimal action set).
For each environment and two policies, the uniformly random one and the shipped online DQN's final
greedy policy, this runs ``--episodes`` episodes in each and compares the mean returns:
``z = (mean_port - mean_ref) / sqrt(se_port^2 + se_ref^2)``; |z| < 3 counts as agreement.

Written to ``benchmarks/results/jaxenv_agreement_<cpu kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402


def _reference_returns(spec, policy_fn, episodes: int, seed: int) -> np.ndarray:
    from policyfit.envs.rollout import rollout_returns

    returns, _ = rollout_returns(policy_fn, spec.env_id, episodes=episodes, seed=seed)
    return np.asarray(returns, np.float64)


def _policies(key: str):
    """``(label, act_fn for the port, params, numpy obs -> actions for the reference)``."""
    import jax
    import numpy as np

    from policyfit.envs import dqn_behavior, jaxenv

    spec = jaxenv.DISCRETE_ENVS[key]
    rng = np.random.default_rng(0)

    def random_np(obs):
        return rng.integers(spec.n_actions, size=len(np.atleast_2d(obs)))

    out = [("random", jaxenv.random_act_fn(spec.n_actions), None, random_np)]
    if key in dqn_behavior.behavior_index():
        final = dqn_behavior.load_snapshots(key)[-1]
        act = dqn_behavior.greedy_act_fn(key)
        jitted = jax.jit(act)

        def greedy_np(obs):
            return np.asarray(jitted(final, np.atleast_2d(obs), jax.random.PRNGKey(0)))

        out.append(("expert (final greedy)", act, final, greedy_np))
    return out


def compare(key: str, episodes: int) -> list[dict]:
    from policyfit.envs import jaxenv

    spec = jaxenv.DISCRETE_ENVS[key]
    rows = []
    for label, act, params, np_policy in _policies(key):
        port = jaxenv.episode_returns(key, act, params, episodes, seed=7)
        ref = _reference_returns(spec, np_policy, episodes, seed=7)
        se = math.sqrt(port.var(ddof=1) / len(port) + ref.var(ddof=1) / len(ref))
        z = 0.0 if se == 0 else float((port.mean() - ref.mean()) / se)
        row = {
            "env": key,
            "policy": label,
            "episodes": episodes,
            "port_mean": round(float(port.mean()), 3),
            "port_se": round(float(port.std(ddof=1) / math.sqrt(len(port))), 3),
            "reference_mean": round(float(ref.mean()), 3),
            "reference_se": round(float(ref.std(ddof=1) / math.sqrt(len(ref))), 3),
            "z": round(z, 2),
            "agree": bool(abs(z) < 3 or port.mean() == ref.mean()),
        }
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--envs",
        default="cartpole,acrobot,mountaincar,breakout,asterix,freeway,spaceinvaders,seaquest",
    )
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()

    rows = [r for key in args.envs.split(",") for r in compare(key, args.episodes)]
    name = f"jaxenv_agreement_{cpu_kind()}"
    write_result(name, {"episodes": args.episodes, "rows": rows})
    lines = [
        f"# gymnax ports vs reference environments ({cpu_kind()})",
        "",
        f"`python benchmarks/jaxenv_agreement.py --episodes {args.episodes}`: mean return "
        "(standard error) of the same policy in the gymnax port (data generation) and in the "
        "reference environment (evaluation); |z| < 3 counts as agreement.",
        "",
        "| env | policy | port | reference | z | agree |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['policy']} | {r['port_mean']:.2f} ({r['port_se']:.2f}) | "
            f"{r['reference_mean']:.2f} ({r['reference_se']:.2f}) | {r['z']:+.2f} | "
            f"{'yes' if r['agree'] else '**no**'} |"
        )
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
