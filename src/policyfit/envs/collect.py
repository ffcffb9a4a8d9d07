"""Vectorized collection: roll a tanh-Gaussian actor out in environments stepped side by side.

The suite's recipes (:mod:`policyfit.envs.suite`) build every dataset with :func:`rollout`; the
online behavior trainer (:mod:`policyfit.training.behavior`) seeds its episode resets with the
same :func:`episode_seed`.

Example:
    >>> episode_seed(0, 3) == episode_seed(0, 3) != episode_seed(1, 3)
    True
    >>> arrays = rollout("Hopper-v5", None, 200, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from policyfit.envs.registry import get_env_spec, make_env

NUM_ENVS = 32  # environments stepped side by side; part of the recipe (changes episode order)


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of episode ``episode`` of a run seeded ``seed`` (a resumed run resets exactly
    as the original; :func:`rollout` seeds its episodes the same way)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def rollout(
    env_id: str,
    params: Any | None,
    num_transitions: int,
    seed: int,
    *,
    num_envs: int = NUM_ENVS,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Roll a tanh-Gaussian actor out, sampling actions, for exactly ``num_transitions`` steps.

    ``params=None`` acts uniformly at random (SAC's warm-up). Episodes run ``num_envs`` at a time
    and are stored in order of completion; episode ``j``'s reset seed derives from ``(seed, j)``
    and the action noise of step ``t`` from ``fold_in(PRNGKey(seed), t)``, so the output is a
    function of ``(params, num_transitions, seed, num_envs)``. The last episode is cut at
    ``num_transitions`` and marked as a timeout.

    Example:
        >>> arrays = rollout("Hopper-v5", None, 200, seed=0)   # doctest: +SKIP
        >>> arrays["observations"].shape                         # doctest: +SKIP
        (200, 11)
    """
    import jax

    n = max(1, min(num_envs, num_transitions))
    envs = [make_env(env_id) for _ in range(n)]
    low = envs[0].action_space.low.astype(np.float32)
    high = envs[0].action_space.high.astype(np.float32)
    obs_dim = int(np.prod(envs[0].observation_space.shape))
    act_dim = int(low.shape[0])
    cap = int(envs[0].spec.max_episode_steps or get_env_spec(env_id).max_episode_steps)
    sample = _sample_fn(act_dim, params is not None)
    base_key = jax.random.PRNGKey(seed)

    # Episodes in progress, one row per environment; finished episodes are copied to `out`.
    ep = {
        "observations": np.zeros((n, cap, obs_dim), np.float32),
        "actions": np.zeros((n, cap, act_dim), np.float32),
        "rewards": np.zeros((n, cap), np.float32),
        "terminals": np.zeros((n, cap), bool),
        "timeouts": np.zeros((n, cap), bool),
        "next_observations": np.zeros((n, cap, obs_dim), np.float32),
    }
    out = {k: np.zeros((num_transitions + cap, *v.shape[2:]), v.dtype) for k, v in ep.items()}
    lengths = np.zeros(n, np.int64)
    obs = np.zeros((n, obs_dim), np.float32)
    next_obs = np.zeros((n, obs_dim), np.float32)
    rewards = np.zeros(n, np.float32)
    terminated = np.zeros(n, bool)
    truncated = np.zeros(n, bool)
    rows = np.arange(n)
    for i, env in enumerate(envs):
        obs[i] = env.reset(seed=episode_seed(seed, i))[0]
    started, total, t = n, 0, 0
    while total < num_transitions:
        actions = np.asarray(sample(params, obs, base_key, t))
        env_actions = low + (actions + 1.0) * 0.5 * (high - low)
        for i, env in enumerate(envs):
            next_obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(env_actions[i])
        ep["observations"][rows, lengths] = obs
        ep["actions"][rows, lengths] = env_actions
        ep["rewards"][rows, lengths] = rewards
        ep["terminals"][rows, lengths] = terminated
        ep["timeouts"][rows, lengths] = truncated & ~terminated
        ep["next_observations"][rows, lengths] = next_obs
        lengths += 1
        obs[:] = next_obs
        for i in np.flatnonzero(terminated | truncated):
            length = int(lengths[i])
            if total < num_transitions:
                for key, value in ep.items():
                    out[key][total : total + length] = value[i, :length]
                total += length
                if progress is not None:
                    progress(length)
            obs[i] = envs[i].reset(seed=episode_seed(seed, started))[0]
            started += 1
            lengths[i] = 0
        t += 1
    for env in envs:
        env.close()
    arrays = {k: v[:num_transitions] for k, v in out.items()}
    if not (arrays["terminals"][-1] or arrays["timeouts"][-1]):
        arrays["timeouts"][-1] = True  # the last episode was cut at the requested size
    return arrays


_SAMPLE_FN_CACHE: dict[tuple[int, bool], Callable] = {}


def _sample_fn(action_dim: int, from_policy: bool) -> Callable:
    """Jitted ``sample(params, obs[n, obs_dim], key, t)`` with the noise key ``fold_in(key, t)``;
    uniform in ``[-1, 1]`` (``params`` ignored) when not ``from_policy``."""
    cache_key = (action_dim, from_policy)
    if cache_key not in _SAMPLE_FN_CACHE:
        import jax

        from policyfit.nn import TanhGaussianPolicy

        actor = TanhGaussianPolicy(action_dim=action_dim)

        def sample(params, obs, key, t):
            key = jax.random.fold_in(key, t)
            if from_policy:
                return actor.apply(params, obs).sample(key)
            return jax.random.uniform(key, (obs.shape[0], action_dim), minval=-1.0, maxval=1.0)

        _SAMPLE_FN_CACHE[cache_key] = jax.jit(sample)
    return _SAMPLE_FN_CACHE[cache_key]
