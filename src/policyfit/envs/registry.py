"""Environment registry: the MuJoCo tasks of the built-in suite and their D4RL reference scores.

Normalized score (D4RL, Fu et al. 2020): ``100 * (R - random) / (expert - random)`` with D4RL's
reference returns, so our numbers sit on the scale every paper reports. D4RL used the ``-v2``
MuJoCo environments (mujoco-py); policyfit uses gymnasium's ``-v5`` (the ``mujoco`` bindings).
Dynamics and rewards are the same tasks but not bit-identical, so scores are comparable in scale,
not to the decimal.

Example:
    >>> from policyfit.envs.registry import normalized_score
    >>> round(normalized_score("Hopper-v5", 3234.3), 1)
    100.0
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from policyfit.errors import PolicyfitError


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    short_name: str  # dataset prefix in the suite: hopper, halfcheetah, walker2d
    ref_min_score: float  # D4RL's random-policy return
    ref_max_score: float  # D4RL's expert return
    max_episode_steps: int = 1000


ENVS: dict[str, EnvSpec] = {
    "Hopper-v5": EnvSpec("Hopper-v5", "hopper", -20.272305, 3234.3),
    "HalfCheetah-v5": EnvSpec("HalfCheetah-v5", "halfcheetah", -280.178953, 12135.0),
    "Walker2d-v5": EnvSpec("Walker2d-v5", "walker2d", 1.629008, 4592.3),
}
SHORT_NAMES = {spec.short_name: env_id for env_id, spec in ENVS.items()}


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
    """D4RL normalized score of undiscounted episode return(s)."""
    spec = get_env_spec(env_id)
    out = (
        100.0
        * (np.asarray(returns, dtype=np.float64) - spec.ref_min_score)
        / (spec.ref_max_score - spec.ref_min_score)
    )
    return float(out) if np.ndim(out) == 0 else out


@contextlib.contextmanager
def _without_mujoco_compiler_notice() -> Iterator[None]:
    """Drop MuJoCo's C-level "settotalmass is deprecated" notice (printed once per model load by
    the Walker2d/HalfCheetah XML files); anything else written to stderr is passed through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [
                line
                for line in text.splitlines(keepends=True)
                if line.strip() and "settotalmass" not in line
            ]
            if kept:
                sys.stderr.write("".join(kept))


def make_env(env_id: str, seed: int | None = None, **kwargs):
    """A single gymnasium environment (time limit included)."""
    import gymnasium as gym

    with _without_mujoco_compiler_notice():
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
