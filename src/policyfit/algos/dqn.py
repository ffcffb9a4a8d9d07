"""DQN for logged discrete decisions, and Double DQN as a flag.

Offline DQN (Mnih et al. 2015, run on a fixed dataset as in Agarwal et al. 2020 and Schweighofer
et al. 2022): regress ``Q(s, a)`` onto the one-step target with a periodically copied target
network ``Q'``,

    y = r + gamma (1 - d) max_a' Q'(s', a')                      (DQN)
    y = r + gamma (1 - d) Q'(s', argmax_a' Q(s', a'))            (Double DQN, van Hasselt et al. 2016)
    L(theta) = E_D [ Huber_1(y - Q(s, a)) ]

and act greedily, ``argmax_a Q(s, a)``. Only terminals stop the bootstrap; a time-limit cut does not.

This class is also the base of the discrete Q-learning family: a subclass changes the network
(:meth:`DQN.network`), how Q-values are read from it (:meth:`DQN.q_values`), the loss
(:meth:`DQN.td_loss`) or how the target network follows (:meth:`DQN.target_update`); the state,
the optimizer step and acting are shared.

Defaults follow the code of the dataset-quality study this family is run for (Schweighofer et al.
2022, "A Dataset Perspective on Offline Reinforcement Learning", github.com/ml-jku/OfflineRL:
``source/agents/dqn.py``, ``source/networks/critic.py``, ``ex_01.py``): its DQN is Double DQN
(``Q`` picks ``a'``, ``Q'`` scores it) with PyTorch's ``SmoothL1Loss`` (Huber, threshold 1), Adam
1e-4, batch 128, gamma 0.95, ``Q'`` copied every 100 updates, a 3x256 MLP. Agarwal et al. 2020's
Atari DQN (github.com/google-research/batch_rl, ``fixed_replay/configs/dqn.gin``) uses the plain
``max`` target (``double=False``), gamma 0.99, a copy every 8000 agent steps (2000 updates) and
batch 32 on a conv net. d3rlpy's ``DQNConfig``/``DoubleDQNConfig`` (``d3rlpy/algos/qlearning/``)
are a peer's Atari defaults (Adam 6.25e-5, batch 32, copy every 8000).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = DQN(DQNConfig(hidden_dims=(8,), double=True))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> batch = {"observations": jnp.zeros((3, 4)), "actions": jnp.array([0, 1, 1]),
    ...          "rewards": jnp.ones(3), "terminals": jnp.zeros(3),
    ...          "next_observations": jnp.zeros((3, 4))}
    >>> state, metrics = algo.update(state, batch, jax.random.PRNGKey(1))
    >>> actions, _ = algo.act(algo.policy_params(state), jnp.zeros((3, 4)), ())
    >>> actions.shape, actions.dtype
    ((3,), dtype('int32'))
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import gradient_step, huber_loss, periodic_update, td_target
from policyfit.errors import ConfigError
from policyfit.nn import DiscreteQNetwork
from policyfit.nn.normalization import normalize_observations, stats_from_spec


@dataclass(frozen=True)
class DQNConfig(AlgoConfig):
    # Schweighofer et al. 2022 (ml-jku/OfflineRL) for classic control, unless a comment says else.
    batch_size: int = 128  # ex_01.py
    discount: float = 0.95  # ex_01.py (classic control; Atari work uses 0.99)
    # critic.py: 3x256 with SELU; policyfit's MLP is ReLU (as d3rlpy's vector encoder)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    learning_rate: float = 1e-4  # Adam, ex_01.py
    double: bool = True  # dqn.py: Q picks a', Q' scores it; False: the Nature/batch_rl max target
    target_update_period: int = 100  # dqn.py: updates between copies of the online network into Q'
    huber_delta: float = 1.0  # SmoothL1Loss's threshold (DQN's error clipping)
    normalize_observations: bool = True  # not in the reference code; harmless for CartPole


@register("dqn")
class DQN(Algorithm):
    """Offline (Double) DQN; the base of the discrete Q-learning family."""

    Config = DQNConfig
    supports_continuous = False
    supports_discrete = True
    policy_keys = ("q", "obs_norm")

    def setup(self, spec: DatasetSpec) -> None:
        if self.config.target_update_period < 1:
            raise ConfigError("must be >= 1", path=self.name, field="target_update_period")
        super().setup(spec)
        self.n_actions = spec.action_dim  # for a discrete spec, the number of actions
        self.q_net = self.network(spec)
        self.optimizer = optax.adam(self.config.learning_rate)

    # ------------------------------------------------------------------ what subclasses change
    def network(self, spec: DatasetSpec) -> DiscreteQNetwork:
        """The Q-network module (one head, one value per action)."""
        return DiscreteQNetwork(spec.action_dim, self.config.hidden_dims)

    def q_values(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        """``Q(s, .)`` ``[B, n_actions]`` (normalized observations in)."""
        return self.q_net.apply(params, obs)

    def next_actions(self, q_params, target_params, next_obs: jnp.ndarray, batch: dict):
        """``a'`` of the target: greedy under Q' (DQN) or under Q (Double DQN)."""
        chooser = q_params if self.config.double else target_params
        return jnp.argmax(self.q_values(chooser, next_obs), axis=-1)

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        """``(loss, metrics)``: Huber TD error of ``Q(s, a)`` against the one-step target."""
        a_next = self.next_actions(q_params, target_params, next_obs, batch)
        q_next = self.q_values(target_params, next_obs)
        next_value = jnp.take_along_axis(q_next, a_next[:, None], axis=-1)[:, 0]
        target = td_target(batch["rewards"], batch["terminals"], next_value, self.config.discount)
        return self.regression_loss(q_params, obs, actions, target)

    def regression_loss(self, q_params, obs, actions, target):
        """``(loss, metrics)``: mean Huber error of ``Q(s, a_data)`` against a constant ``target``."""
        q = jnp.take_along_axis(self.q_values(q_params, obs), actions[:, None], axis=-1)[:, 0]
        delta = self.config.huber_delta
        return jnp.mean(huber_loss(target - q, delta) * delta), {"q_mean": jnp.mean(q)}

    def target_update(self, target, online, step: jnp.ndarray):
        """Q' after update ``step``: a copy of Q every ``target_update_period`` updates."""
        return periodic_update(target, online, step, self.config.target_update_period)

    # ------------------------------------------------------------------ the contract
    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        q = self.q_net.init(key, jnp.zeros((1, spec.observation_dim)))
        return {
            "q": q,
            "q_target": q,
            "q_opt": self.optimizer.init(q),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "step": jnp.zeros((), jnp.int32),
        }

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = batch["actions"].astype(jnp.int32)
        (loss, metrics), grads = jax.value_and_grad(self.td_loss, has_aux=True)(
            state["q"], state["q_target"], obs, actions, batch, next_obs, key
        )
        q, q_opt = gradient_step(self.optimizer, state["q"], state["q_opt"], grads)
        step = state["step"] + 1
        q_target = self.target_update(state["q_target"], q, step)
        new_state = dict(state, q=q, q_target=q_target, q_opt=q_opt, step=step)
        return new_state, {"q_loss": loss, **metrics}

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """Greedy ``argmax_a Q(s, a)`` (``key`` is ignored: the policy is deterministic)."""
        q = self.q_values(params["q"], normalize_observations(obs, params["obs_norm"]))
        return jnp.argmax(q, axis=-1).astype(jnp.int32), carry
