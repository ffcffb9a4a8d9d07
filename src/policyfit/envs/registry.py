"""Environment registry: the MuJoCo tasks of the built-in suite.

Their D4RL reference returns and the normalized score live once, in :mod:`policyfit.common.scores`
(layer 0, so data and diagnostics use the same table); :data:`ENVS` is built from that table.

Example:
    >>> from policyfit.envs.registry import normalized_score
    >>> round(normalized_score("Hopper-v5", 3234.3), 1)
    100.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policyfit.common import scores
from policyfit.errors import PolicyfitError


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    short_name: str  # dataset prefix in the suite: hopper, halfcheetah, walker2d
    ref_min_score: float  # D4RL's random-policy return
    ref_max_score: float  # D4RL's expert return
    max_episode_steps: int = 1000


ENVS: dict[str, EnvSpec] = {
    env_id: EnvSpec(env_id, ref.short_name, ref.ref_min_score, ref.ref_max_score)
    for env_id, ref in scores.REFERENCES.items()
}
SHORT_NAMES = scores.SHORT_NAMES


def get_env_spec(env_id: str) -> EnvSpec:
    """Look up an environment by gymnasium id (``Hopper-v5``) or suite prefix (``hopper``)."""
    if env_id in ENVS:
        return ENVS[env_id]
    if env_id.lower() in SHORT_NAMES:
        return ENVS[SHORT_NAMES[env_id.lower()]]
    raise PolicyfitError(
        f"unknown environment; known: {', '.join(ENVS)}", path=env_id, field="env_id"
    )


def normalized_score(env_id: str, returns: np.ndarray | float) -> np.ndarray | float:
    """D4RL normalized score of undiscounted episode return(s) in a registered environment."""
    spec = get_env_spec(env_id)
    out = scores.normalized_score(returns, (spec.ref_min_score, spec.ref_max_score))
    return float(out) if np.ndim(out) == 0 else out


def register_policyfit_envs() -> None:
    """Register every environment id policyfit defines with gymnasium (the gymnax lanes, the flat
    ``policyfit/PointMaze_*-v3``, the ``policyfit/*Bandit-v0`` and the ``policyfit/FrozenLake*-v0``
    ids) and route MuJoCo's warnings; each part runs once per process. Call it before
    ``gymnasium.make``."""
    from policyfit.envs.frozenlake import register_frozenlake_envs
    from policyfit.envs.jaxenv import register_envs
    from policyfit.envs.maze_env import register_maze_envs
    from policyfit.envs.quiet import route_mujoco_warnings
    from policyfit.envs.stochastic import register_bandit_envs

    register_envs()
    register_maze_envs()
    register_bandit_envs()
    register_frozenlake_envs()
    route_mujoco_warnings()


def make_env(env_id: str, seed: int | None = None, **kwargs):
    """A single gymnasium environment (time limit included)."""
    import gymnasium as gym

    register_policyfit_envs()
    env = gym.make(env_id, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
    return env


def make_vec_env(env_id: str, num_envs: int, seed: int = 0):
    """``num_envs`` copies in one synchronous vector env (MuJoCo steps are fast; no subprocesses).

    Episodes auto-reset in gymnasium's NEXT_STEP mode: after a step that ends an episode the next
    ``step`` call resets that sub-env (its action is ignored).
    """
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id) for _ in range(num_envs)])
    envs.reset(seed=seed)
    return envs
