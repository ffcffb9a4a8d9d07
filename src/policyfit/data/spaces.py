"""Observation/action spaces as plain JSON-able dicts, and conversion to and from gymnasium spaces.

``{"type": "box", "low": [...], "high": [...]}`` or ``{"type": "discrete", "n": k}``.

Goal-conditioned observations (gymnasium-robotics' ``GoalEnv`` and Minari's maze datasets: a dict
of ``observation``, ``achieved_goal`` and ``desired_goal``) are flattened to one vector,
``observation`` followed by ``desired_goal`` (:data:`GOAL_OBSERVATION_KEYS`): the usual input of an
algorithm that is not goal-conditioned (D4RL's maze2d had the goal fixed and outside the
observation; with it concatenated one policy serves every goal). ``achieved_goal`` is left out of
the vector: in PointMaze it repeats the ball's position, ``observation[:2]``. The dataset readers
keep it as the extra per-transition array ``achieved_goal``; rollouts flatten the environment's
dict the same way (:func:`flatten_goal_observation`).

Example:
    >>> import numpy as np
    >>> obs = {"observation": np.arange(4.0), "achieved_goal": np.arange(2.0),
    ...        "desired_goal": np.array([7.0, 8.0])}
    >>> flatten_goal_observation(obs).tolist()
    [0.0, 1.0, 2.0, 3.0, 7.0, 8.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# the keys of a goal-conditioned dict observation that make up the flat vector, in order
GOAL_OBSERVATION_KEYS = ("observation", "desired_goal")


def is_goal_observation(value: Any) -> bool:
    """True for a dict (observation or gymnasium ``Dict`` space) holding the
    :data:`GOAL_OBSERVATION_KEYS`."""
    keys = getattr(value, "spaces", value)
    return isinstance(keys, Mapping) and all(k in keys for k in GOAL_OBSERVATION_KEYS)


def flatten_goal_observation(obs: Mapping[str, Any]) -> np.ndarray:
    """``observation`` then ``desired_goal`` along the last axis (one observation or a batch)."""
    return np.concatenate([np.asarray(obs[k]) for k in GOAL_OBSERVATION_KEYS], axis=-1)


def box_space(low: Any, high: Any) -> dict[str, Any]:
    low = np.asarray(low, dtype=np.float64).reshape(-1)
    high = np.asarray(high, dtype=np.float64).reshape(-1)
    return {"type": "box", "low": low.tolist(), "high": high.tolist()}


def discrete_space(n: int) -> dict[str, Any]:
    return {"type": "discrete", "n": int(n)}


def space_from_gym(space: Any) -> dict[str, Any]:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        return discrete_space(int(space.n))
    if isinstance(space, gym.spaces.Box):
        return box_space(space.low, space.high)
    if isinstance(space, gym.spaces.Dict) and is_goal_observation(space):
        parts = [space.spaces[k] for k in GOAL_OBSERVATION_KEYS]
        if all(isinstance(p, gym.spaces.Box) for p in parts):
            return box_space(
                np.concatenate([np.ravel(p.low) for p in parts]),
                np.concatenate([np.ravel(p.high) for p in parts]),
            )
    raise TypeError(
        f"unsupported gymnasium space {space!r}: only Box, Discrete and goal-conditioned Dict "
        f"spaces (keys {', '.join(GOAL_OBSERVATION_KEYS)}) are supported"
    )


def space_to_gym(space: dict[str, Any]) -> Any:
    import gymnasium as gym

    if space["type"] == "discrete":
        return gym.spaces.Discrete(int(space["n"]))
    low = np.asarray(space["low"], dtype=np.float64)
    high = np.asarray(space["high"], dtype=np.float64)
    return gym.spaces.Box(
        low=low.astype(np.float32), high=high.astype(np.float32), dtype=np.float32
    )


def infer_box(x: np.ndarray) -> dict[str, Any]:
    """An unbounded box with the width of ``x``'s last dimension."""
    dim = x.shape[1] if x.ndim > 1 else 1
    return {"type": "box", "low": [-np.inf] * dim, "high": [np.inf] * dim}
