"""Observation normalization, stored next to the policy so ``act`` sees the same inputs as training.

Statistics are plain arrays inside the parameter pytree (``{"mean": ..., "std": ...}``) — they travel
with every checkpoint and exported policy and receive no gradient.

Example:
    >>> import numpy as np
    >>> stats = observation_stats(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> np.asarray(normalize_observations(np.array([[2.0, 1.0]]), stats), np.float64).round(3).tolist()
    [[0.999, 0.0]]
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np


def observation_stats(
    observations: Any, eps: float = 1e-3, enabled: bool = True
) -> dict[str, jnp.ndarray]:
    """Per-dimension mean and std (plus ``eps``, as in TD3+BC and CORL); identity when disabled."""
    obs = np.asarray(observations, dtype=np.float64)
    if not enabled:
        dim = obs.shape[-1]
        return {"mean": jnp.zeros(dim, jnp.float32), "std": jnp.ones(dim, jnp.float32)}
    return {
        "mean": jnp.asarray(obs.mean(0), jnp.float32),
        "std": jnp.asarray(obs.std(0) + eps, jnp.float32),
    }


def stats_from_spec(
    spec: Any, eps: float = 1e-3, enabled: bool = True, with_next: bool = False
) -> dict[str, jnp.ndarray]:
    """The same statistics from a :class:`~policyfit.algos.base.DatasetSpec` (``obs_mean``, ``obs_std``).

    ``with_next`` uses the statistics over observations and next observations together
    (``obs_next_mean``, ``obs_next_std``), as Robust IQL does.
    """
    mean, std = (
        (spec.obs_next_mean, spec.obs_next_std)
        if with_next and spec.obs_next_mean
        else (spec.obs_mean, spec.obs_std)
    )
    if not enabled or not mean:
        dim = spec.observation_dim
        return {"mean": jnp.zeros(dim, jnp.float32), "std": jnp.ones(dim, jnp.float32)}
    return {
        "mean": jnp.asarray(mean, jnp.float32),
        "std": jnp.asarray(np.asarray(std) + eps, jnp.float32),
    }


def normalize_observations(obs: Any, stats: dict[str, Any]) -> Any:
    """``(obs - mean) / std``."""
    return (obs - stats["mean"]) / stats["std"]


def action_scale_from_spec(spec: Any) -> dict[str, jnp.ndarray]:
    """Affine map between the dataset's action box and ``[-1, 1]`` (where tanh heads live).

    Unbounded or missing dimensions keep the identity map.
    """
    dim = spec.action_dim
    low = np.asarray(spec.action_low if spec.action_low else [-1.0] * dim, dtype=np.float64)
    high = np.asarray(spec.action_high if spec.action_high else [1.0] * dim, dtype=np.float64)
    finite = np.isfinite(low) & np.isfinite(high) & (high > low)
    center = np.where(finite, (high + low) / 2.0, 0.0)
    half_range = np.where(finite, (high - low) / 2.0, 1.0)
    return {
        "center": jnp.asarray(center, jnp.float32),
        "half_range": jnp.asarray(half_range, jnp.float32),
    }


def to_unit_actions(actions: Any, scale: dict[str, Any]) -> Any:
    """Dataset actions -> ``[-1, 1]``."""
    return (actions - scale["center"]) / scale["half_range"]


def from_unit_actions(actions: Any, scale: dict[str, Any]) -> Any:
    """``[-1, 1]`` -> the environment's action box."""
    return actions * scale["half_range"] + scale["center"]
