"""REM, Random Ensemble Mixture (Agarwal et al. 2020): DQN with ``K`` Q-heads mixed at random.

Each update draws ``alpha_k ~ U(0, 1)``, normalized to sum to 1 (one draw per batch, shared by the
online and target networks), and trains the convex combination ``Q_alpha = sum_k alpha_k Q_k`` as
DQN trains its one head: ``y = r + gamma (1 - d) Q'_alpha(s', a')`` with ``a'`` greedy under
``Q'_alpha`` (Agarwal et al.) or under ``Q_alpha`` (``double``), Huber loss. Acting is greedy under
the mean of the heads.

Sources read: Agarwal et al. 2020, "An Optimistic Perspective on Offline RL" (Sec. 4.2, Eq. 6);
github.com/google-research/batch_rl (``multi_head/multi_head_dqn_agent.py``: the max target over the
mixed target heads, Huber loss; ``fixed_replay/configs/rem.gin``: 200 heads, 'STOCHASTIC' mixture,
Adam 5e-5, gamma 0.99 on Atari); Schweighofer et al. 2022's github.com/ml-jku/OfflineRL
(``source/agents/rem.py``, ``networks/critic.py::RemCritic``: 200 heads, Double-DQN target, Adam
1e-4, copy every 100, gamma 0.95). That code draws a new mixture on every forward pass; policyfit
shares one per update, as batch_rl does.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = REM(REMConfig(hidden_dims=(8,), n_heads=3))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> algo.q_net.apply(state["q"], jnp.zeros((5, 4))).shape  # [B, heads, actions]
    (5, 3, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from policyfit.algos.base import DatasetSpec, register
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.algos.losses import huber_loss, td_target
from policyfit.errors import ConfigError
from policyfit.nn import DiscreteQNetwork


@dataclass(frozen=True)
class REMConfig(DQNConfig):
    # the rest as DQN: Schweighofer et al. 2022's classic-control settings (Double-DQN target)
    n_heads: int = 200  # batch_rl rem.gin and ml-jku/OfflineRL rem.py


@register("rem")
class REM(DQN):
    """Random Ensemble Mixture on logged discrete decisions."""

    Config = REMConfig

    def setup(self, spec: DatasetSpec) -> None:
        if self.config.n_heads < 2:
            raise ConfigError("must be >= 2", path=self.name, field="n_heads")
        super().setup(spec)

    def network(self, spec: DatasetSpec) -> DiscreteQNetwork:
        return DiscreteQNetwork(
            spec.action_dim, self.config.hidden_dims, n_heads=self.config.n_heads
        )

    def q_values(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        """The mean of the heads (acting)."""
        return jnp.mean(self.q_net.apply(params, obs), axis=-2)

    def mixed_q(self, params, obs: jnp.ndarray, alphas: jnp.ndarray) -> jnp.ndarray:
        """``Q_alpha(s, .) = sum_k alpha_k Q_k(s, .)`` ``[B, n_actions]``."""
        return jnp.einsum("bka,k->ba", self.q_net.apply(params, obs), alphas)

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        alphas = jax.random.uniform(key, (self.config.n_heads,))
        alphas = alphas / jnp.sum(alphas)
        q_next = self.mixed_q(target_params, next_obs, alphas)
        chooser = self.mixed_q(q_params, next_obs, alphas) if self.config.double else q_next
        a_next = jnp.argmax(chooser, axis=-1)
        next_value = jnp.take_along_axis(q_next, a_next[:, None], axis=-1)[:, 0]
        target = td_target(batch["rewards"], batch["terminals"], next_value, self.config.discount)
        mixed = self.mixed_q(q_params, obs, alphas)
        q = jnp.take_along_axis(mixed, actions[:, None], axis=-1)[:, 0]
        loss = jnp.mean(huber_loss(target - q, self.config.huber_delta) * self.config.huber_delta)
        return loss, {"q_mean": jnp.mean(q)}
