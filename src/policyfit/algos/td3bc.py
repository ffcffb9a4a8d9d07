"""TD3+BC — "A Minimalist Approach to Offline Reinforcement Learning" (Fujimoto & Gu, 2021).

TD3 (Fujimoto et al. 2018) with two changes: the actor maximizes ``lambda Q(s, pi(s))`` minus a
behavior-cloning term, and states are normalized. Eq. 3 of the paper:

    pi = argmax_pi E_(s,a)~D [ lambda Q(s, pi(s)) - (pi(s) - a)^2 ],   lambda = alpha / mean|Q(s, a)|

Critics: clipped double-Q targets with target-policy smoothing (TD3):
``y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))``, ``eps ~ N(0, sigma)``.
The actor and the target networks update every ``policy_freq`` critic steps.

Defaults are the paper's (Appendix C) and CORL's ``td3_bc.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import delayed_actor_update, gradient_step, td_target
from policyfit.errors import ConfigError
from policyfit.nn import INIT_SCHEMES, DeterministicPolicy, EnsembleCritic
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)


def regularized_actor_loss(
    q: jnp.ndarray, pi: jnp.ndarray, target: jnp.ndarray, alpha: float
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Eq. 3: ``(-lambda mean Q(s, pi(s)) + mean (pi(s) - target)^2, the MSE term)`` with
    ``lambda = alpha / mean|Q|`` (constant for the gradient); ``target`` is the dataset action
    (TD3+BC) or the nearest dataset pair's action (PRDC)."""
    lmbda = jax.lax.stop_gradient(alpha / jnp.mean(jnp.abs(q)))
    mse = jnp.mean((pi - target) ** 2)
    return -lmbda * jnp.mean(q) + mse, mse


@dataclass(frozen=True)
class TD3BCConfig(AlgoConfig):
    alpha: float = 2.5  # alpha in Eq. 3 (paper: 2.5)
    policy_noise: float = 0.2  # sigma of target-policy smoothing (TD3)
    noise_clip: float = 0.5  # c, clip of the smoothing noise (TD3)
    policy_freq: int = 2  # delayed actor / target updates (TD3)
    tau: float = 0.005  # target network Polyak rate
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)
    normalize_observations: bool = True  # Sec. 5: states normalized by dataset mean/std (eps 1e-3)
    # weight initialization, one of policyfit.nn.INIT_SCHEMES: "orthogonal" (policyfit's, as the
    # JAX ports) or "pytorch" (torch.nn.Linear's defaults, as the paper's code, CORL and d3rlpy)
    init_scheme: str = "orthogonal"


@register("td3bc")
class TD3BC(Algorithm):
    """TD3+BC: TD3 whose actor also regresses to the dataset's actions."""

    Config = TD3BCConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.policy_freq < 1:
            raise ConfigError("must be >= 1", path=self.name, field="policy_freq")
        if cfg.init_scheme not in INIT_SCHEMES:
            raise ConfigError(
                f"must be one of {', '.join(INIT_SCHEMES)}", path=self.name, field="init_scheme"
            )
        self.spec = spec
        self.actor = DeterministicPolicy(
            spec.action_dim, cfg.hidden_dims, init_scheme=cfg.init_scheme
        )
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=2, init_scheme=cfg.init_scheme)
        self.actor_opt = optax.adam(cfg.actor_lr)
        self.critic_opt = optax.adam(cfg.critic_lr)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, spec.observation_dim))
        act = jnp.zeros((1, spec.action_dim))
        actor = self.actor.init(k_actor, obs)
        critic = self.critic.init(k_critic, obs, act)
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

    def smoothed_target(self, state, batch, key) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """``(s', a', y)``: normalized next states, the target actor's action with clipped noise
        ``a' = clip(pi'(s') + clip(eps, -c, c), -1, 1)`` and the clipped double-Q target
        ``y = r + gamma (1 - d) min_i Q'_i(s', a')`` (constant); ``key`` draws ``eps``."""
        cfg = self.config
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        eps = jax.random.normal(key, batch["actions"].shape)
        noise = jnp.clip(cfg.policy_noise * eps, -cfg.noise_clip, cfg.noise_clip)
        next_actions = jnp.clip(
            self.actor.apply(state["actor_target"], next_obs) + noise, -1.0, 1.0
        )
        next_q = self.critic.apply(state["critic_target"], next_obs, next_actions).min(axis=0)
        target = td_target(batch["rewards"], batch["terminals"], next_q, cfg.discount)
        return next_obs, next_actions, target

    def critic_loss(self, critic_params, state, obs, actions, batch, key):
        _, _, target = self.smoothed_target(state, batch, key)
        q = self.critic.apply(critic_params, obs, actions)
        loss = jnp.mean((q - target) ** 2, axis=1).sum()  # sum over the two critics, as TD3
        return loss, q.mean()

    def actor_loss(self, actor_params, critic_params, obs, actions):
        pi = self.actor.apply(actor_params, obs)
        q = self.critic.apply(critic_params, obs, pi)[0]  # Q_1 only, as in the paper's code
        return regularized_actor_loss(q, pi, actions, self.config.alpha)

    def actor_inputs(self, obs: jnp.ndarray, actions: jnp.ndarray, batch: dict) -> tuple:
        """The arguments of :meth:`actor_loss` after the actor and critic parameters.

        TD3+BC regresses to the batch's own actions; PRDC (a subclass) passes its search table.
        """
        return obs, actions

    def actor_metrics(self, aux) -> dict:
        """The logged metrics made of :meth:`actor_loss`'s aux output (NaN on critic-only steps)."""
        return {"bc_mse": aux}

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])

        (critic_loss, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state["critic"], state, obs, actions, batch, key
        )
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )
        state = dict(state, critic=critic, critic_opt=critic_opt)

        state, (actor_loss, aux) = delayed_actor_update(
            state,
            self.actor_loss,
            self.actor_opt,
            cfg.tau,
            cfg.policy_freq,
            *self.actor_inputs(obs, actions, batch),
        )
        state = dict(state, step=state["step"] + 1)
        return state, {
            "critic_loss": critic_loss,
            "q_mean": q_mean,
            "actor_loss": actor_loss,
            **self.actor_metrics(aux),
        }

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        out = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return from_unit_actions(out, params["action_scale"]), carry
