"""AWAC — "Accelerating Online Reinforcement Learning with Offline Datasets" (Nair et al., 2020).

An off-policy actor-critic whose actor is fit by advantage-weighted maximum likelihood on the
dataset's actions (Eq. 12 of the paper):

    pi = argmax_pi E_(s,a)~D [ log pi(a|s) exp(A(s, a) / lambda) ],   A(s, a) = Q(s, a) - V(s),

with ``V(s) = Q(s, a_pi)``, ``a_pi ~ pi(s)`` (one sample, as in the authors' and CORL's code), the
weights clipped at 100. The critics are TD-trained towards ``r + gamma (1 - d) min_i Q'_i(s', a')``,
``a' ~ pi(s')``.

Defaults: CORL ``awac.py`` (tinkoff-ai/CORL at commit 6afec90484bbf47dee05fdf525e26a3ebe028e9b) —
``lambda = 1``, Adam 3e-4, MLP 256x3 (actor and critics), batch 256 — with two known differences:

* ``lambda``: 1.0 is the default of CORL's ``TrainConfig``, but its per-dataset D4RL locomotion
  configs (``configs/offline/awac/{halfcheetah,hopper,walker2d}/*_v2.yaml``) all set
  ``awac_lambda: 0.3333``. policyfit keeps 1.0, its default since AWAC was added and CORL's own
  fallback: on the pendulum test task (``tests/algos/test_learning.py``, 2000 updates, seed 0)
  1.0 returned -548 and 0.3333 returned -664 (random: about -1200); one seed on a toy task, no
  D4RL comparison yet. ``--set awac_lambda=0.3333`` reproduces CORL's locomotion setting;
* the actor: CORL's AWAC ``Actor`` has a linear (unbounded) mean and a learned state-independent
  log-std clamped to [-20, 2]; its samples are clamped to [-1, 1], but ``act`` returns the raw
  mean, which nothing in that code clips. policyfit's AWAC uses the Gaussian head it shares with IQL (as in
  CORL's IQL ``GaussianPolicy``): ``tanh`` on the mean, learned state-independent log-std clamped
  to [-5, 2]. Kept because the deterministic action (the mean) then stays in the action box
  without relying on clipping; a tanh mean reaches the box's edges only asymptotically, so the
  likelihood of data actions at exactly +-1 is slightly harder to fit. Its effect on scores has
  not been measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import awr_weights, gradient_step, soft_update, td_target
from policyfit.algos.propensity import box_action_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import EnsembleCritic, GaussianPolicy
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)


@dataclass(frozen=True)
class AWACConfig(AlgoConfig):
    # lambda in Eq. 12: CORL TrainConfig's 1.0. CORL's locomotion configs (configs/offline/awac)
    # use 0.3333 (--set awac_lambda=0.3333); 1.0 kept: not compared on D4RL yet (module docs)
    awac_lambda: float = 1.0
    max_weight: float = 100.0  # clip of exp(A / lambda) (CORL `exp_adv_max`)
    tau: float = 0.005  # target critic Polyak rate
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    # CORL: 3 hidden layers (actor and critics). The actor is IQL's Gaussian (tanh on the mean,
    # log-std in [-5, 2]); CORL's AWAC actor has a linear mean, log-std in [-20, 2] (module docs)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    normalize_observations: bool = True


@register("awac")
class AWAC(Algorithm):
    """Advantage-weighted actor-critic."""

    Config = AWACConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.awac_lambda <= 0:
            raise ConfigError("must be > 0", path=self.name, field="awac_lambda")
        self.spec = spec
        self.actor = GaussianPolicy(spec.action_dim, cfg.hidden_dims)
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=2)
        self.actor_opt = optax.adam(cfg.actor_lr)
        self.critic_opt = optax.adam(cfg.critic_lr)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, spec.observation_dim))
        actor = self.actor.init(k_actor, obs)
        critic = self.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
        return {
            "actor": actor,
            "actor_opt": self.actor_opt.init(actor),
            "critic": critic,
            "critic_target": critic,
            "critic_opt": self.critic_opt.init(critic),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def sample(self, actor_params, obs, key):
        return jnp.clip(self.actor.apply(actor_params, obs).sample(key), -1.0, 1.0)

    def critic_loss(self, critic_params, state, obs, actions, next_obs, batch, key):
        next_actions = self.sample(state["actor"], next_obs, key)
        next_q = self.critic.apply(state["critic_target"], next_obs, next_actions).min(axis=0)
        target = td_target(batch["rewards"], batch["terminals"], next_q, self.config.discount)
        q = self.critic.apply(critic_params, obs, actions)
        return jnp.mean((q - target) ** 2, axis=1).sum(), q.mean()

    # Eq. 12: weighted log-likelihood with A = Q(s, a) - Q(s, a_pi).
    def actor_loss(self, actor_params, critic_params, obs, actions, key):
        v = self.critic.apply(critic_params, obs, self.sample(actor_params, obs, key)).min(axis=0)
        q = self.critic.apply(critic_params, obs, actions).min(axis=0)
        weights = awr_weights(q - v, 1.0 / self.config.awac_lambda, self.config.max_weight)
        log_prob = self.actor.apply(actor_params, obs).log_prob(actions)
        return -jnp.mean(weights * log_prob), weights.mean()

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        k_critic, k_actor = jax.random.split(key)
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])

        (critic_loss, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state["critic"], state, obs, actions, next_obs, batch, k_critic
        )
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )

        (actor_loss, mean_weight), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state["actor"], critic, obs, actions, k_actor
        )
        actor, actor_opt = gradient_step(self.actor_opt, state["actor"], state["actor_opt"], grads)

        new_state = dict(
            state,
            actor=actor,
            actor_opt=actor_opt,
            critic=critic,
            critic_target=soft_update(state["critic_target"], critic, cfg.tau),
            critic_opt=critic_opt,
            step=state["step"] + 1,
        )
        return new_state, {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "q_mean": q_mean,
            "adv_weight_mean": mean_weight,
        }

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        out = dist.mode() if key is None else jnp.clip(dist.sample(key), -1.0, 1.0)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The Gaussian actor's log-density (clipped samples: atoms on the bounds)."""
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)
