"""Observation normalization, stored next to the policy so ``act`` sees the same inputs as training.

Statistics are plain arrays inside the parameter pytree (``{"mean": ..., "std": ...}``) — they travel
with every checkpoint and exported policy and receive no gradient.

Example:
    >>> import numpy as np
    >>> stats = observation_stats(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> normalize_observations(np.array([[2.0, 1.0]]), stats).round(3).tolist()
    [[1.0, 0.0]]
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


def stats_from_spec(spec: Any, eps: float = 1e-3, enabled: bool = True) -> dict[str, jnp.ndarray]:
    """The same statistics from a :class:`~policyfit.algos.base.DatasetSpec` (``obs_mean``, ``obs_std``)."""
    if not enabled or not spec.obs_mean:
        dim = spec.observation_dim
        return {"mean": jnp.zeros(dim, jnp.float32), "std": jnp.ones(dim, jnp.float32)}
    return {
        "mean": jnp.asarray(spec.obs_mean, jnp.float32),
        "std": jnp.asarray(np.asarray(spec.obs_std) + eps, jnp.float32),
    }


def normalize_observations(obs: Any, stats: dict[str, Any]) -> Any:
    """``(obs - mean) / std``."""
    return (obs - stats["mean"]) / stats["std"]
