"""Vectorized rollouts of a deterministic policy: mean/std return and the D4RL normalized score.

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

from policyfit.errors import PolicyfitError


def reference_scores(
    env_id: str, metadata: dict[str, Any] | None = None
) -> tuple[float, float] | None:
    """(random, expert) returns for the normalized score: the env registry, else dataset metadata."""
    from policyfit.envs.registry import ENVS, SHORT_NAMES

    spec = ENVS.get(env_id) or ENVS.get(SHORT_NAMES.get(env_id.lower(), ""))
    if spec is not None:
        return spec.ref_min_score, spec.ref_max_score
    md = metadata or {}
    if md.get("ref_min_score") is not None and md.get("ref_max_score") is not None:
        return float(md["ref_min_score"]), float(md["ref_max_score"])
    return None


def rollout_returns(
    policy: Callable[[np.ndarray], Any],
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    max_envs: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted returns and lengths of ``episodes`` episodes, ``max_envs`` environments at a time.

    Each batch of environments is reset with seeds ``seed + i`` (episode ``i``), so the same seed
    gives the same start states; the policy is called on the batch of observations.
    """
    import gymnasium as gym

    if episodes < 1:
        raise PolicyfitError("must be >= 1", field="episodes")
    returns, lengths = [], []
    for first in range(0, episodes, max_envs):
        n = min(max_envs, episodes - first)
        try:
            envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)])
        except gym.error.Error as exc:
            raise PolicyfitError(
                f"cannot make environment: {exc}", path=env_id, field="env_id"
            ) from None
        obs, _ = envs.reset(seed=[seed + first + i for i in range(n)])
        ret = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        running = np.ones(n, dtype=bool)
        while running.any():
            action = np.asarray(policy(np.asarray(obs, dtype=np.float32)), dtype=np.float64)
            action = action.reshape((n, *envs.single_action_space.shape))
            obs, reward, term, trunc, _ = envs.step(action)
            # After an episode ends, gymnasium auto-resets that sub-env on the next step; those
            # steps belong to no episode we count.
            ret += np.where(running, reward, 0.0)
            length += running
            running &= ~(term | trunc)
        envs.close()
        returns.append(ret)
        lengths.append(length)
    return np.concatenate(returns), np.concatenate(lengths)


def evaluate(
    policy: Callable[[np.ndarray], Any] | str | Path,
    env_id: str | None = None,
    episodes: int = 10,
    seed: int = 0,
    *,
    ref_scores: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Roll out ``policy`` deterministically and summarize.

    ``policy`` is a callable ``obs [B, obs_dim] -> actions [B, act_dim]`` or a run directory (loaded
    with :func:`policyfit.load_policy`; its dataset's ``env_id`` is used when ``env_id`` is None).
    Returns ``return_mean``, ``return_std``, ``length_mean``, ``normalized_score`` (None without
    reference scores), ``normalized_score_std`` and the per-episode ``returns``.

    Example:
        >>> evaluate("runs/iql-hopper-medium-s0", episodes=10)["normalized_score"]  # doctest: +SKIP
        64.2
    """
    metadata: dict[str, Any] = {}
    if isinstance(policy, str | Path):
        from policyfit.algos.policy import load_policy, read_run_config

        run_config = read_run_config(policy)
        metadata = run_config.get("dataset", {}).get("metadata", {})
        env_id = env_id or run_config.get("dataset", {}).get("env_id")
        policy = load_policy(policy)
    if not env_id:
        raise PolicyfitError(
            "no environment to evaluate in: the dataset names no env_id; pass env_id",
            field="env_id",
        )
    returns, lengths = rollout_returns(policy, env_id, episodes=episodes, seed=seed)
    refs = ref_scores or reference_scores(env_id, metadata)
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
    }
    if refs is not None:
        lo, hi = refs
        scores = 100.0 * (returns - lo) / (hi - lo)
        out["normalized_score"] = float(scores.mean())
        out["normalized_score_std"] = float(scores.std())
        out["normalized_score_sem"] = (
            float(scores.std(ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
        )
    return out
