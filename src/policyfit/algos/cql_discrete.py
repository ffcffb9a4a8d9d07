"""Discrete CQL (Kumar et al. 2020, CQL(H) for discrete actions): DQN plus a conservative penalty.

``L(theta) = L_TD(theta) + alpha E_D [ logsumexp_a Q(s, a) - Q(s, a_data) ]``: the TD loss of
:class:`~policyfit.algos.dqn.DQN` (Double-DQN target, Huber) and a penalty that pushes ``Q`` down
on all actions (soft maximum) and up on the logged one. Acting is greedy.

Head: Schweighofer et al. 2022's code (github.com/ml-jku/OfflineRL, ``source/agents/cql.py``) adds
the penalty to its Double-DQN head with ``alpha = 0.1`` (Adam 1e-4, copy every 100, gamma 0.95);
that is the default here. Kumar et al.'s Atari code (github.com/aviralkumar2907/CQL,
``atari/batch_rl/multi_head/quantile_agent.py``) adds the same penalty, on the mean of the quantiles,
to QR-DQN with ``minq_weight`` (code default 10.0).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = DiscreteCQL(DiscreteCQLConfig(hidden_dims=(8,)))
    >>> algo.config.cql_alpha
    0.1
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from policyfit.algos.base import register
from policyfit.algos.dqn import DQN, DQNConfig


@dataclass(frozen=True)
class DiscreteCQLConfig(DQNConfig):
    # the rest as DQN: Schweighofer et al. 2022's classic-control settings
    cql_alpha: float = 0.1  # ml-jku/OfflineRL cql.py (Kumar's Atari QR-DQN code: 10.0)


@register("cql_discrete")
class DiscreteCQL(DQN):
    """Conservative Q-learning on logged discrete decisions."""

    Config = DiscreteCQLConfig

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        td, metrics = super().td_loss(q_params, target_params, obs, actions, batch, next_obs, key)
        q_all = self.q_values(q_params, obs)
        q_data = jnp.take_along_axis(q_all, actions[:, None], axis=-1)[:, 0]
        penalty = jnp.mean(jax.nn.logsumexp(q_all, axis=-1) - q_data)
        return td + self.config.cql_alpha * penalty, {
            **metrics,
            "td_loss": td,
            "cql_penalty": penalty,
        }
