"""Vectorized rollouts of a policy in gymnasium environments, with the policy's carry.

A policy here is anything with the carry-aware call of :class:`CarryPolicy` — what
:func:`policyfit.load_policy` returns, or what the trainer builds for its evaluations — or a plain
function ``obs [B, obs_dim] -> actions`` (wrapped as a stateless policy). Each step the rollout

1. asks for actions: ``actions, carry = policy.act(obs, carry)``;
2. steps the environments;
3. feeds the rewards back: ``carry = policy.observe_reward(carry, rewards)``

so a return-conditioned policy can count down its target and a sequence model can extend its
context. Continuous (``Box``) and discrete (``Discrete``) action spaces are both handled; a
goal-conditioned dict observation is flattened as the datasets are (``observation`` then
``desired_goal``, :mod:`policyfit.data.spaces`). The maze evaluation environments
(:mod:`policyfit.envs.maze_env`) are registered before the environments are made.

Example:
    >>> import numpy as np
    >>> returns, lengths = rollout_returns(lambda obs: np.zeros((len(obs), 1)), "Pendulum-v1",
    ...                                    episodes=2)
    >>> returns.shape, int(lengths[0])
    ((2,), 200)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from policyfit.data.spaces import flatten_goal_observation, is_goal_observation
from policyfit.errors import PolicyfitError


@runtime_checkable
class CarryPolicy(Protocol):
    """The call every policy offers to rollouts, serving and export."""

    def initial_carry(self, batch_size: int) -> Any: ...

    def act(self, obs: Any, carry: Any, key: Any = None) -> tuple[Any, Any]: ...

    def observe_reward(self, carry: Any, reward: Any) -> Any: ...


class StatelessPolicy:
    """A plain ``obs -> actions`` function seen as a :class:`CarryPolicy` with an empty carry."""

    def __init__(self, fn: Callable[[np.ndarray], Any]):
        self.fn = fn

    def initial_carry(self, batch_size: int) -> tuple:
        return ()

    def act(self, obs: Any, carry: Any, key: Any = None) -> tuple[Any, Any]:
        return self.fn(obs), carry

    def observe_reward(self, carry: Any, reward: Any) -> Any:
        return carry


def as_carry_policy(policy: CarryPolicy | Callable[[np.ndarray], Any]) -> CarryPolicy:
    """``policy`` itself if it has the carry-aware call, else a :class:`StatelessPolicy` of it."""
    if isinstance(policy, CarryPolicy):
        return policy
    if callable(policy):
        return StatelessPolicy(policy)
    raise PolicyfitError(
        f"expected a policy (load_policy's result or a function obs -> action), got "
        f"{type(policy).__name__}",
        field="policy",
    )


def _make_vector_env(env_id: str, n: int):
    import gymnasium as gym

    from policyfit.envs.registry import register_policyfit_envs

    register_policyfit_envs()
    try:
        return gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)])
    except gym.error.Error as exc:
        raise PolicyfitError(
            f"cannot make environment: {exc}", path=env_id, field="env_id"
        ) from None


def _flat_observations(obs: Any) -> np.ndarray:
    """The batch of observations as float32 rows; a goal-conditioned dict observation (a raw
    gymnasium-robotics maze) flattened as the dataset readers flatten it
    (:func:`policyfit.data.spaces.flatten_goal_observation`)."""
    if is_goal_observation(obs):
        obs = flatten_goal_observation(obs)
    return np.asarray(obs, dtype=np.float32)


def _env_actions(actions: Any, space: Any, n: int) -> np.ndarray:
    """The policy's output as the array ``envs.step`` expects for ``n`` environments."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        return np.asarray(actions).reshape(n).astype(np.int64)
    return np.asarray(actions, dtype=np.float64).reshape((n, *space.shape))


def rollout_returns(
    policy: CarryPolicy | Callable[[np.ndarray], Any],
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    max_envs: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted returns and lengths of ``episodes`` episodes, ``max_envs`` environments at a time.

    Each batch of environments is reset with seeds ``seed + i`` (episode ``i``), so the same seed
    gives the same start states; the policy is called on the batch of observations with a fresh
    carry per batch, and every reward is fed back into the carry.
    """
    if episodes < 1:
        raise PolicyfitError("must be >= 1", field="episodes")
    policy = as_carry_policy(policy)
    returns, lengths = [], []
    for first in range(0, episodes, max_envs):
        n = min(max_envs, episodes - first)
        envs = _make_vector_env(env_id, n)
        obs, _ = envs.reset(seed=[seed + first + i for i in range(n)])
        carry = policy.initial_carry(n)
        ret = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        running = np.ones(n, dtype=bool)
        while running.any():
            actions, carry = policy.act(_flat_observations(obs), carry)
            obs, reward, term, trunc, _ = envs.step(
                _env_actions(actions, envs.single_action_space, n)
            )
            carry = policy.observe_reward(carry, np.asarray(reward, dtype=np.float32))
            # After an episode ends, gymnasium auto-resets that sub-env on the next step; those
            # steps belong to no episode we count.
            ret += np.where(running, reward, 0.0)
            length += running
            running &= ~(term | trunc)
        envs.close()
        returns.append(ret)
        lengths.append(length)
    return np.concatenate(returns), np.concatenate(lengths)
