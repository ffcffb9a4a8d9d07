"""CRR for discrete actions: a critic-weighted categorical policy.

Critic Regularized Regression (Wang et al. 2020, NeurIPS; Sec. 3, Eq. 2-4) fits a critic ``Q`` of
the current policy and trains the policy by a filtered, weighted maximum likelihood of the logged
actions:

    y      = r + gamma (1 - d) sum_a' pi'(a'|s') Q'(s', a')          (policy evaluation)
    L_Q    = E_D [ Huber_1(y - Q(s, a)) ]
    A(s,a) = Q(s, a) - sum_a' pi(a'|s) Q(s, a')                     ("mean" advantage)
    f      = 1[A > 0]  (binary)   or   min(exp(A / beta), 20)  (exp)
    L_pi   = -E_D [ f(Q, pi, s, a) log pi(a|s) ]                    (f constant for the gradient)

With discrete actions the expectations over ``pi`` are exact sums, not the paper's ``m = 4``
samples. The critic is a plain DQN-style ``Q`` (the :class:`~policyfit.algos.dqn.DQN` base and its
Huber loss), not the paper's distributional (C51) critic: a documented simplification. The policy
acts with ``argmax_a pi(a|s)``, or samples from ``pi`` when a key is given.

Defaults: beta 1, weight clip 20, the "exp" filter and the "mean" advantage are the paper's
(Sec. 3, Table 3); MLPs 256x256, Adam 3e-4 for both networks, batch 100, gamma 0.99 and hard
target copies (critic and policy) every 100 updates are d3rlpy's ``CRRConfig`` defaults
(``d3rlpy/algos/qlearning/crr.py``).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = CRR(CRRConfig(hidden_dims=(8,), weight_type="binary"))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> batch = {"observations": jnp.zeros((3, 4)), "actions": jnp.array([0, 1, 1]),
    ...          "rewards": jnp.ones(3), "terminals": jnp.zeros(3),
    ...          "next_observations": jnp.zeros((3, 4))}
    >>> state, metrics = algo.update(state, batch, jax.random.PRNGKey(1))
    >>> sorted(metrics)
    ['actor_loss', 'mean_weight', 'q_loss', 'q_mean']
    >>> actions, _ = algo.act(algo.policy_params(state), jnp.zeros((3, 4)), ())
    >>> actions.dtype
    dtype('int32')
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import Carry, DatasetSpec, register
from policyfit.algos.discrete_bc import categorical_actions
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.algos.losses import (
    awr_weights,
    gradient_step,
    huber_loss,
    periodic_update,
    td_target,
)
from policyfit.algos.propensity import categorical_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import CategoricalPolicy
from policyfit.nn.normalization import normalize_observations

WEIGHT_TYPES = ("exp", "binary")


@dataclass(frozen=True)
class CRRConfig(DQNConfig):
    weight_type: str = "exp"  # the filter f: "exp" (CRR-exp) or "binary" (CRR-binary, 1[A > 0])
    beta: float = 1.0  # temperature of exp(A / beta) (Wang et al. 2020)
    max_weight: float = 20.0  # clip of exp(A / beta) (Wang et al. 2020)
    # d3rlpy CRRConfig: batch 100, Adam 3e-4 (actor and critic), hard target copy every 100
    batch_size: int = 100
    learning_rate: float = 3e-4  # critic
    actor_lr: float = 3e-4
    target_update_period: int = 100
    # inherited: hidden_dims (256, 256), huber_delta 1, discount 0.99; ``double`` is unused (the
    # target is the expectation under the target policy)


@register("crr")
class CRR(DQN):
    """Critic Regularized Regression with a categorical policy (discrete actions)."""

    Config = CRRConfig
    policy_keys = ("actor", "obs_norm")

    def setup(self, spec: DatasetSpec) -> None:
        if self.config.weight_type not in WEIGHT_TYPES:
            raise ConfigError(
                f"unknown filter; valid: {', '.join(WEIGHT_TYPES)}",
                path=self.name,
                field="weight_type",
            )
        if self.config.beta <= 0:
            raise ConfigError("must be > 0", path=self.name, field="beta")
        super().setup(spec)
        self.actor = CategoricalPolicy(spec.action_dim, self.config.hidden_dims)
        self.actor_optimizer = optax.adam(self.config.actor_lr)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        q_key, actor_key = jax.random.split(key)
        state = super().init(spec, q_key)
        actor = self.actor.init(actor_key, jnp.zeros((1, spec.observation_dim)))
        return dict(
            state, actor=actor, actor_target=actor, actor_opt=self.actor_optimizer.init(actor)
        )

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        """Huber error of ``Q(s, a)`` against ``r + gamma (1 - d) E_{a'~pi'} Q'(s', a')``.

        ``target_params`` holds both targets: ``{"q": Q', "actor": pi'}``.
        """
        pi_next = jax.nn.softmax(self.actor.apply(target_params["actor"], next_obs), axis=-1)
        next_value = jnp.sum(pi_next * self.q_values(target_params["q"], next_obs), axis=-1)
        target = td_target(batch["rewards"], batch["terminals"], next_value, self.config.discount)
        q = jnp.take_along_axis(self.q_values(q_params, obs), actions[:, None], axis=-1)[:, 0]
        loss = jnp.mean(huber_loss(target - q, self.config.huber_delta) * self.config.huber_delta)
        return loss, {"q_mean": jnp.mean(q)}

    def weights(self, q: jnp.ndarray, log_pi: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
        """The filter ``f`` of the logged actions from ``Q(s, .)`` and ``log pi(.|s)`` ``[B, n]``."""
        q_sa = jnp.take_along_axis(q, actions[:, None], axis=-1)[:, 0]
        advantage = q_sa - jnp.sum(jnp.exp(log_pi) * q, axis=-1)
        if self.config.weight_type == "binary":
            return jax.lax.stop_gradient((advantage > 0).astype(q.dtype))
        return awr_weights(advantage, 1.0 / self.config.beta, self.config.max_weight)

    def actor_loss(self, actor_params, q, obs, actions):
        """``-mean f(s, a) log pi(a|s)`` (``f`` from the critic, constant for the gradient)."""
        log_pi = jax.nn.log_softmax(self.actor.apply(actor_params, obs), axis=-1)
        weight = self.weights(q, jax.lax.stop_gradient(log_pi), actions)
        chosen = jnp.take_along_axis(log_pi, actions[:, None], axis=-1)[:, 0]
        return -jnp.mean(weight * chosen), jnp.mean(weight)

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = batch["actions"].astype(jnp.int32)
        targets = {"q": state["q_target"], "actor": state["actor_target"]}
        (q_loss, metrics), grads = jax.value_and_grad(self.td_loss, has_aux=True)(
            state["q"], targets, obs, actions, batch, next_obs, key
        )
        q_params, q_opt = gradient_step(self.optimizer, state["q"], state["q_opt"], grads)

        # the policy step uses the updated critic (as d3rlpy: critic first, then actor)
        q_all = jax.lax.stop_gradient(self.q_values(q_params, obs))
        (actor_loss, mean_weight), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state["actor"], q_all, obs, actions
        )
        actor, actor_opt = gradient_step(
            self.actor_optimizer, state["actor"], state["actor_opt"], grads
        )

        step = state["step"] + 1
        period = self.config.target_update_period
        new_state = dict(
            state,
            q=q_params,
            q_opt=q_opt,
            q_target=periodic_update(state["q_target"], q_params, step, period),
            actor=actor,
            actor_opt=actor_opt,
            actor_target=periodic_update(state["actor_target"], actor, step, period),
            step=step,
        )
        return new_state, {
            "q_loss": q_loss,
            "actor_loss": actor_loss,
            "mean_weight": mean_weight,
            **metrics,
        }

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """``argmax_a pi(a|s)``, or a sample from ``pi(.|s)`` when ``key`` is given."""
        logits = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return categorical_actions(logits, key), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """``log pi(a|s)`` of the categorical actor."""
        logits = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return categorical_log_prob(logits, actions)
