"""Behavior cloning for discrete actions: a categorical policy fitted by maximum likelihood.

The policy is ``pi(a|s) = softmax(f_theta(s))_a`` over the ``n`` actions of the dataset's discrete
action space, trained to minimize the cross-entropy with the logged actions,
``L(theta) = -E_(s,a)~D [log pi(a|s)]`` (the discrete form of BC's likelihood objective; d3rlpy's
``DiscreteBC``). Acting is ``argmax_a pi(a|s)``, or a sample from ``pi(.|s)`` when a key is given.

%BC works as for continuous BC: ``top_fraction < 1`` keeps only the best trajectories by return.

Defaults follow BC (:mod:`policyfit.algos.bc`, CORL): MLP 256x2, Adam 3e-4, batch 256,
observation normalization.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = DiscreteBC(DiscreteBCConfig(hidden_dims=(8,)))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> batch = {"observations": jnp.zeros((3, 4)), "actions": jnp.array([0, 1, 1])}
    >>> state, metrics = algo.update(state, batch, jax.random.PRNGKey(1))
    >>> actions, carry = algo.act(algo.policy_params(state), jnp.zeros((3, 4)), algo.initial_carry(3))
    >>> actions.shape, actions.dtype
    ((3,), dtype('int32'))
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.bc import top_fraction_episodes
from policyfit.algos.losses import supervised_actor_step
from policyfit.algos.propensity import categorical_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import CategoricalPolicy
from policyfit.nn.normalization import normalize_observations, stats_from_spec


@dataclass(frozen=True)
class DiscreteBCConfig(AlgoConfig):
    top_fraction: float = 1.0  # %BC: keep this fraction of trajectories by return
    hidden_dims: tuple[int, ...] = (256, 256)  # as BC (CORL)
    learning_rate: float = 3e-4  # as BC (CORL)
    normalize_observations: bool = True


def categorical_actions(logits: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    """``argmax`` of the logits (int32), or a sample from their softmax when ``key`` is given."""
    if key is None:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@register("discrete_bc")
class DiscreteBC(Algorithm):
    """Behavior cloning with a categorical policy (discrete actions only)."""

    Config = DiscreteBCConfig
    supports_continuous = False
    supports_discrete = True
    policy_keys = ("actor", "obs_norm")

    def setup(self, spec: DatasetSpec) -> None:
        if not 0.0 < self.config.top_fraction <= 1.0:
            raise ConfigError("must lie in (0, 1]", path=self.name, field="top_fraction")
        super().setup(spec)
        # for a discrete spec, action_dim is the number of actions
        self.actor = CategoricalPolicy(spec.action_dim, self.config.hidden_dims)
        self.optimizer = optax.adam(self.config.learning_rate)

    def prepare(self, ds):
        """%BC: the ``top_fraction`` of episodes with the highest return (all of them for BC)."""
        return top_fraction_episodes(ds, self.config.top_fraction)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        actor = self.actor.init(key, jnp.zeros((1, spec.observation_dim)))
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "step": jnp.zeros((), jnp.int32),
        }

    def loss(self, actor_params, obs, actions):
        """Cross-entropy ``-mean_i log softmax(f(s_i))[a_i]`` and the batch accuracy."""
        logits = self.actor.apply(actor_params, obs)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        chosen = jnp.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0]
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == actions)
        return -jnp.mean(chosen), accuracy

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = batch["actions"].astype(jnp.int32)
        new_state, loss, accuracy = supervised_actor_step(
            self.optimizer, state, self.loss, obs, actions, has_aux=True
        )
        return new_state, {"actor_loss": loss, "accuracy": accuracy}

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        logits = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return categorical_actions(logits, key), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """``log softmax(f(s))[a]``."""
        logits = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return categorical_log_prob(logits, actions)
