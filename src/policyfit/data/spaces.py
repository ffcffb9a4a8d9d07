"""Observation/action spaces as plain JSON-able dicts, and conversion to and from gymnasium spaces.

``{"type": "box", "low": [...], "high": [...]}`` or ``{"type": "discrete", "n": k}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
    raise TypeError(f"unsupported gymnasium space {space!r}: only Box and Discrete are supported")


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
