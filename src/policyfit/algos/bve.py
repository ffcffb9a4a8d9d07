"""BVE: Behavior Value Estimation, SARSA on the logged next action, then one greedy improvement.

Gulcehre et al. 2021 ("Regularized Behavior Value Estimation", Sec. 3), as run in the dataset-quality
study of Schweighofer et al. 2022 ("A Dataset Perspective on Offline Reinforcement Learning"):
estimate the value of the *behavior* policy with the SARSA target of the action the data took next,

    y = r + gamma (1 - d) Q'(s', a'_logged)
    L = E_D [ Huber_1(y - Q(s, a)) ]

and act greedily, ``argmax_a Q(s, a)`` (one step of policy improvement over the behavior). No
maximum enters the target, so the estimate never bootstraps from actions the data did not take.
The logged ``a'`` comes from the transition sampler's ``next_actions`` (at an episode's last step
that is the step's own action; a terminal stops the bootstrap anyway).

Defaults are the :class:`~policyfit.algos.dqn.DQN` base's (MLP 256x256, Adam 1e-4, batch 256,
gamma 0.99, target copied every 100 updates); the study's own values were not checked here.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = BVE(BVEConfig(hidden_dims=(8,)))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> batch = {"observations": jnp.zeros((3, 4)), "actions": jnp.array([0, 1, 1]),
    ...          "rewards": jnp.ones(3), "terminals": jnp.zeros(3),
    ...          "next_observations": jnp.zeros((3, 4)), "next_actions": jnp.array([1, 1, 0])}
    >>> state, metrics = algo.update(state, batch, jax.random.PRNGKey(1))
    >>> sorted(metrics)
    ['q_loss', 'q_mean']
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from policyfit.algos.base import register
from policyfit.algos.dqn import DQN, DQNConfig


@dataclass(frozen=True)
class BVEConfig(DQNConfig):
    pass  # DQN's fields; ``double`` is unused (the logged a' is the target's action)


@register("bve")
class BVE(DQN):
    """Behavior Value Estimation (SARSA on logged next actions, greedy acting)."""

    Config = BVEConfig

    def next_actions(self, q_params, target_params, next_obs: jnp.ndarray, batch: dict):
        """SARSA: the logged next action ``a'`` (the behavior policy's), not a greedy one."""
        return batch["next_actions"].astype(jnp.int32)
