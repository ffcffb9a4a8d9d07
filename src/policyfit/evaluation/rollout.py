"""``policyfit.evaluate``: roll out a learned policy and summarize its return and normalized score.

The rollouts themselves (vectorized, carry-aware, continuous or discrete actions) are
:func:`policyfit.envs.rollout.rollout_returns`; reference scores come from
:mod:`policyfit.common.scores`. This module adds what a user asks for: a run directory or a policy
in, a summary out.

Example:
    >>> from policyfit.evaluation.rollout import evaluate
    >>> import numpy as np
    >>> evaluate(lambda obs: np.zeros((len(obs), 1)), "Pendulum-v1", episodes=2)["episodes"]
    2
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.scores import check_ref_scores, normalized_score, reference_scores
from policyfit.envs.rollout import CarryPolicy, rollout_returns
from policyfit.errors import PolicyfitError

__all__ = ["evaluate", "reference_scores", "rollout_returns"]


def evaluate(
    policy: CarryPolicy | Callable[[np.ndarray], Any] | str | Path,
    env_id: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    *,
    ref_scores: tuple[float, float] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Roll out ``policy`` deterministically and summarize.

    Args:
        policy: a run directory (loaded with :func:`policyfit.load_policy`; its dataset's
            ``env_id`` and reference scores are used unless given), a loaded policy, or a
            function ``obs [B, obs_dim] -> actions``.
        env_id: the gymnasium environment; default: the run's.
        episodes: episodes to roll out (seeds ``seed``, ``seed + 1``, ...).
        ref_scores: ``(random, expert)`` returns for the normalized score.
        **overrides: config fields of a run's policy to change when acting (e.g.
            ``target_return=3000.0`` for RvS-R).

    Returns ``return_mean``, ``return_std``, ``length_mean``, ``normalized_score`` (None without
    reference scores), ``normalized_score_std``, ``normalized_score_sem`` and the per-episode
    ``returns``.

    Example:
        >>> evaluate("runs/iql-hopper-medium-s0", episodes=10)["normalized_score"]  # doctest: +SKIP
        64.2
        >>> evaluate("runs/rvs_r-hopper-medium-s0", target_return=3000.0)     # doctest: +SKIP
    """
    metadata: dict[str, Any] = {}
    source = None
    if isinstance(policy, str | Path):
        from policyfit.training.rundir import RunDir, load_policy

        run_config = RunDir(policy).read_config()
        metadata = run_config.get("dataset", {}).get("metadata", {})
        source = run_config.get("dataset", {}).get("source")
        env_id = env_id or run_config.get("dataset", {}).get("env_id")
        policy = load_policy(policy, **overrides)
    elif overrides:
        raise PolicyfitError(
            f"config overrides {sorted(overrides)} apply only to a run directory",
            field="overrides",
        )
    if not env_id:
        raise PolicyfitError(
            "no environment to evaluate in: the dataset names no env_id; pass env_id",
            field="env_id",
        )
    returns, lengths = rollout_returns(policy, env_id, episodes=episodes, seed=seed)
    refs = (
        check_ref_scores(ref_scores)
        if ref_scores is not None
        else reference_scores(env_id, metadata, source=source)
    )
    out: dict[str, Any] = {
        "env_id": env_id,
        "episodes": int(episodes),
        "seed": int(seed),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "normalized_score": None,
        "normalized_score_std": None,
        "returns": returns.tolist(),
        "reference_scores": list(refs) if refs is not None else None,
    }
    if refs is not None:
        scores = normalized_score(returns, refs)
        out["normalized_score"] = float(scores.mean())
        out["normalized_score_std"] = float(scores.std())
        out["normalized_score_sem"] = (
            float(scores.std(ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
        )
    return out
