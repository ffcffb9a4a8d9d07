"""ReBRAC — "Revisiting the Minimalist Approach to Offline RL" (Tarasov et al., 2023).

TD3+BC with the design choices that matter added back: behavior-cloning penalties in BOTH the actor
and the critic target with separate weights, LayerNorm in the critics, deeper networks, larger
batches and a larger learning rate. Eq. 2 and 3 of the paper:

    actor:   max_pi E_(s,a)~D [ Q(s, pi(s)) / mean|Q|  -  beta_1 ||pi(s) - a||^2 ]
    critic:  y = r + gamma (1 - d) [ min_i Q'_i(s', a~') - beta_2 ||a~' - a'||^2 ],
             a~' = clip(pi'(s') + clip(eps, -c, c), -1, 1),

where ``a'`` is the action the dataset took at ``s'``. Delayed actor and target updates as in TD3.

Defaults: the paper / JAX-CORL ``rebrac.py`` — Adam 1e-3, batch 1024, 3 hidden layers of 256,
LayerNorm in the critics only, ``gamma = 0.99``, ``tau = 5e-3``. ``beta_1``/``beta_2`` are tuned per
dataset in the paper (Table 7, e.g. 0.01 to 1.0); 1.0 is JAX-CORL's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import delayed_actor_update, td_target
from policyfit.errors import ConfigError
from policyfit.nn import DeterministicPolicy, EnsembleCritic
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)


@dataclass(frozen=True)
class ReBRACConfig(AlgoConfig):
    batch_size: int = 1024  # paper, Table 5
    actor_bc_coef: float = 1.0  # beta_1 (per dataset in the paper)
    critic_bc_coef: float = 1.0  # beta_2 (per dataset in the paper)
    policy_noise: float = 0.2  # sigma of target-policy smoothing (TD3)
    noise_clip: float = 0.5
    policy_freq: int = 2
    tau: float = 0.005
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    actor_layer_norm: bool = False
    critic_layer_norm: bool = True
    normalize_q: bool = True  # divide Q by mean|Q| in the actor loss (as TD3+BC's lambda)
    normalize_observations: bool = False  # JAX-CORL `normalize_states=False`


@register("rebrac")
class ReBRAC(Algorithm):
    """Revisited behavior-regularized actor-critic."""

    Config = ReBRACConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.policy_freq < 1:
            raise ConfigError("must be >= 1", path=self.name, field="policy_freq")
        self.spec = spec
        self.actor = DeterministicPolicy(
            spec.action_dim, cfg.hidden_dims, layer_norm=cfg.actor_layer_norm
        )
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=2, layer_norm=cfg.critic_layer_norm)
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
            "actor_target": actor,
            "actor_opt": self.actor_opt.init(actor),
            "critic": critic,
            "critic_target": critic,
            "critic_opt": self.critic_opt.init(critic),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    # Eq. 3: the critic's target is penalized by the distance to the dataset's next action.
    def critic_loss(
        self, critic_params, state, obs, actions, next_obs, data_next_actions, batch, key
    ):
        cfg = self.config
        noise = jnp.clip(
            cfg.policy_noise * jax.random.normal(key, actions.shape),
            -cfg.noise_clip,
            cfg.noise_clip,
        )
        next_actions = jnp.clip(
            self.actor.apply(state["actor_target"], next_obs) + noise, -1.0, 1.0
        )
        penalty = jnp.sum((next_actions - data_next_actions) ** 2, axis=-1)
        next_q = self.critic.apply(state["critic_target"], next_obs, next_actions).min(axis=0)
        next_q = next_q - cfg.critic_bc_coef * penalty
        target = td_target(batch["rewards"], batch["terminals"], next_q, cfg.discount)
        q = self.critic.apply(critic_params, obs, actions)
        return jnp.mean((q - target) ** 2, axis=1).sum(), q.mean()

    # Eq. 2: deterministic policy gradient with a behavior-cloning penalty.
    def actor_loss(self, actor_params, critic_params, obs, actions):
        cfg = self.config
        pi = self.actor.apply(actor_params, obs)
        penalty = jnp.sum((pi - actions) ** 2, axis=-1)
        q = self.critic.apply(critic_params, obs, pi).min(axis=0)
        scale = jax.lax.stop_gradient(1.0 / jnp.mean(jnp.abs(q))) if cfg.normalize_q else 1.0
        return jnp.mean(cfg.actor_bc_coef * penalty - scale * q), penalty.mean()

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        data_next_actions = to_unit_actions(batch["next_actions"], state["action_scale"])

        (critic_loss, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state["critic"], state, obs, actions, next_obs, data_next_actions, batch, key
        )
        updates, critic_opt = self.critic_opt.update(grads, state["critic_opt"], state["critic"])
        state = dict(
            state, critic=optax.apply_updates(state["critic"], updates), critic_opt=critic_opt
        )

        state, (actor_loss, bc_penalty) = delayed_actor_update(
            state, self.actor_loss, self.actor_opt, cfg.tau, cfg.policy_freq, obs, actions
        )
        state = dict(state, step=state["step"] + 1)
        return state, {
            "critic_loss": critic_loss,
            "q_mean": q_mean,
            "actor_loss": actor_loss,
            "bc_penalty": bc_penalty,
        }

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        out = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return from_unit_actions(out, params["action_scale"]), carry
