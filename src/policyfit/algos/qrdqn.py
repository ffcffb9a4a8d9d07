"""QR-DQN (Dabney et al. 2018): DQN that regresses ``N`` quantiles of the return.

The network outputs ``theta_i(s, a)``, ``i = 1..N``, the return's quantiles at the midpoints
``tau_i = (2i - 1) / 2N``; ``Q(s, a) = mean_i theta_i(s, a)`` picks actions. The target samples are
``T theta_j = r + gamma (1 - d) theta'_j(s', a')`` with ``a'`` greedy under ``Q'`` (Dabney et al.)
or under ``Q`` (``double``, as the dataset-quality study's code does), and the loss is the quantile
Huber loss (Eq. 10), summed over ``i``, averaged over ``j`` and over the batch
(:func:`policyfit.algos.losses.quantile_huber_loss`).

Sources read: Dabney et al. 2018 (Eq. 9-10, Lemma 2: midpoints); Agarwal et al.'s
github.com/google-research/batch_rl (``multi_head/quantile_agent.py``: the same loss with
``tau_hat = (i + 0.5) / N``; ``fixed_replay/configs/quantile.gin``: 200 atoms, kappa 1, Adam 5e-5,
gamma 0.99, on Atari); Schweighofer et al. 2022's github.com/ml-jku/OfflineRL
(``source/agents/qrdqn.py``: 50 quantiles, Double-DQN action choice, Adam 1e-4, copy every 100,
gamma 0.95 on classic control). That code weights the Huber term with ``tau = i / N`` indexed by
the *target* sample; policyfit follows the paper (midpoints, indexed by the estimated quantile).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = QRDQN(QRDQNConfig(hidden_dims=(8,), n_quantiles=5))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> algo.q_net.apply(state["q"], jnp.zeros((3, 4))).shape  # [B, actions, quantiles]
    (3, 2, 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from policyfit.algos.base import DatasetSpec, register
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.algos.losses import quantile_huber_loss, td_target
from policyfit.errors import ConfigError
from policyfit.nn import DiscreteQNetwork


@dataclass(frozen=True)
class QRDQNConfig(DQNConfig):
    # the rest as DQN: Schweighofer et al. 2022's classic-control settings
    n_quantiles: int = 50  # ml-jku/OfflineRL qrdqn.py (Dabney et al. / batch_rl Atari: 200)
    # huber_delta is kappa of the quantile Huber loss: 1 in Dabney et al. and batch_rl


@register("qrdqn")
class QRDQN(DQN):
    """Quantile-regression DQN on logged discrete decisions."""

    Config = QRDQNConfig

    def setup(self, spec: DatasetSpec) -> None:
        if self.config.n_quantiles < 2:
            raise ConfigError("must be >= 2", path=self.name, field="n_quantiles")
        super().setup(spec)

    def network(self, spec: DatasetSpec) -> DiscreteQNetwork:
        return DiscreteQNetwork(
            spec.action_dim, self.config.hidden_dims, n_quantiles=self.config.n_quantiles
        )

    def quantiles(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        """``theta(s, .)`` ``[B, n_actions, N]``."""
        return self.q_net.apply(params, obs)

    def q_values(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        """``Q(s, a) = mean_i theta_i(s, a)``."""
        return jnp.mean(self.quantiles(params, obs), axis=-1)

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        a_next = self.next_actions(q_params, target_params, next_obs, batch)
        next_theta = _take_action(self.quantiles(target_params, next_obs), a_next)  # [B, N]
        targets = td_target(
            batch["rewards"][:, None], batch["terminals"][:, None], next_theta, self.config.discount
        )
        theta = _take_action(self.quantiles(q_params, obs), actions)
        loss = jnp.mean(quantile_huber_loss(theta, targets, self.config.huber_delta))
        return loss, {"q_mean": jnp.mean(theta)}


def _take_action(values: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
    """``values[b, actions[b], :]`` of ``[B, A, N]`` values: ``[B, N]``."""
    return jnp.take_along_axis(values, actions[:, None, None], axis=1)[:, 0]
