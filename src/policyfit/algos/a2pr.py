"""A2PR — "Adaptive Advantage-guided Policy Regularization for Offline RL" (Liu et al., ICML 2024).

TD3+BC (:mod:`policyfit.algos.td3bc`: clipped double-Q critics with target-policy smoothing,
delayed actor and target updates, normalized states) plus a state-value net ``V`` and an
"augmented behaviour policy": a conditional VAE trained only on the dataset actions whose advantage
is positive. The actor's behaviour-cloning target switches per sample between the VAE's
reconstruction of ``pi(s)`` and the dataset action, whichever has the higher advantage, and the BC
term is weighted by how many of the two have a positive advantage. One update, in the order of the
official code (states normalized, actions in ``[-1, 1]``, ``Q_1`` the first critic):

    critics: y = r + gamma (1 - d) min_i Q'_i(s', a'),  a' = clip(pi'(s') + clip(eps, -c, c), -1, 1)
    V:       t = min(r + gamma (1 - d) min_i Q_i(s', a'),  y)     (Q_i: the critics just updated)
             L_V = mean (V(s) - t)^2
    VAE:     L = mean[w 1(Q_1(s, a) > V(s)) (Dec(s, z) - a)^2] + 0.5 KL(N(mu, sigma) || N(0, I)),
             z = mu(s, a) + sigma(s, a) eps
    actor:   a~ = Dec(s, z),  z from Enc(s, pi(s));  A_pi = Q_1(s, a~) - V(s),  A_D = Q_1(s, a) - V(s)
             a^ = a~ if A_pi >= A_D else a
             m = mask (1(Q_1(s, a~) >= V(s)) + 1(Q_1(s, a) > V(s)))     in {0, mask, 2 mask}
             L_pi = -lambda mean Q_1(s, pi(s)) + mean[m (pi(s) - a^)^2],   lambda = alpha / mean|Q_1|

Details as in the official code (``ltlhuuu/A2PR``, ``A2PR.py`` at commit f92a2a4): ``V(s)`` in the
VAE and actor masks is the value net's output BEFORE its own step of the same update; the VAE and
the actor see the critics and the VAE AFTER their steps. The switch and the mask are constants,
but ``a^`` is NOT detached where it is the VAE's action: the BC gradient also flows through
``Dec(s, Enc(s, pi(s)))`` back into ``pi`` (only the actor's parameters take that step). The VAE
draws a fresh ``eps ~ N(0, I)`` (unclipped) in both its loss and the actor's; its encoder's
``log sigma`` is clipped to ``[-4, 15]`` and its decoder ends in ``tanh``. The expectile loss in
the official ``critic.py`` is defined but unused; ``V`` is regressed with a plain MSE.

Defaults: ``A2PR.py``, ``core/network/{actor,critic}.py`` and ``utils/config.py`` — actor 3x256,
critics and ``V`` 4x256, VAE encoder and decoder 750-750 with latent ``2 |A|``; Adam 3e-4 for the
actor, critics and ``V``, Adam's default 1e-3 for the VAE; batch 256, ``tau = 0.005``, policy noise
0.2 clipped at 0.5, ``policy_freq = 2``, states normalized (eps 1e-3), 1M updates. ``alpha``,
``mask``, ``vae_weight`` and ``discount`` default to the ``A2PR`` class's own defaults (2.5, 1.0,
1.0, 0.99; the argparse default of ``--mask`` is 0.5). The README's per-environment commands
(:data:`PAPER_SETTINGS`):

=================  =======  ==========  ======  ========
environment        alpha    vae_weight  mask    discount
=================  =======  ==========  ======  ========
halfcheetah        40.0     1.0         1.0     0.99
hopper             2.5      1.0         0.4     0.995
walker2d           2.5      1.5         1.0     0.99
=================  =======  ==========  ======  ========
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import DatasetSpec, register
from policyfit.algos.losses import delayed_actor_update, gradient_step, td_target
from policyfit.algos.td3bc import TD3BC, TD3BCConfig
from policyfit.errors import ConfigError
from policyfit.nn import MLP, EnsembleCritic, ValueNet
from policyfit.nn.modules import default_init
from policyfit.nn.normalization import normalize_observations, to_unit_actions

#: The README's per-environment settings (``ltlhuuu/A2PR`` README, "Run experiments"), for the
#: ``-medium-v2`` datasets; pass them with ``--set`` (``discount`` is the config's ``discount``).
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "halfcheetah": {"alpha": 40.0, "vae_weight": 1.0, "mask": 1.0, "discount": 0.99},
    "hopper": {"alpha": 2.5, "vae_weight": 1.0, "mask": 0.4, "discount": 0.995},
    "walker2d": {"alpha": 2.5, "vae_weight": 1.5, "mask": 1.0, "discount": 0.99},
}

LOG_STD_RANGE = (-4.0, 15.0)  # the VAE encoder's clip of log sigma (A2PR.py)


class ConditionalVAE(nn.Module):
    """``q(z | s, a)`` and ``a = tanh(Dec(s, z))`` (BCQ's VAE, as A2PR uses it).

    ``__call__(obs, actions, eps)`` encodes, samples ``z = mu + sigma eps`` with the given standard
    normal draws ``eps`` ``[B, latent_dim]`` and decodes: ``(reconstruction, mu, log_sigma)``.
    """

    action_dim: int
    latent_dim: int
    hidden_dims: Sequence[int] = (750, 750)

    def setup(self) -> None:
        self.encoder = MLP(self.hidden_dims, activate_final=True)
        self.mean = nn.Dense(self.latent_dim, kernel_init=default_init(1.0))
        self.log_std = nn.Dense(self.latent_dim, kernel_init=default_init(1.0))
        self.decoder = MLP(self.hidden_dims, activate_final=True)
        self.head = nn.Dense(self.action_dim, kernel_init=default_init(1.0))

    def __call__(
        self, obs: jnp.ndarray, actions: jnp.ndarray, eps: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        h = self.encoder(jnp.concatenate([obs, actions], axis=-1))
        mean = self.mean(h)
        log_std = jnp.clip(self.log_std(h), *LOG_STD_RANGE)
        return self.decode(obs, mean + jnp.exp(log_std) * eps), mean, log_std

    def decode(self, obs: jnp.ndarray, z: jnp.ndarray) -> jnp.ndarray:
        return jnp.tanh(self.head(self.decoder(jnp.concatenate([obs, z], axis=-1))))


@dataclass(frozen=True)
class A2PRConfig(TD3BCConfig):
    alpha: float = 2.5  # lambda = alpha / mean|Q_1| (README: 2.5 hopper/walker2d, 40 halfcheetah)
    mask: float = 1.0  # BC weight per positive advantage (A2PR class: 1.0; README hopper 0.4)
    vae_weight: float = 1.0  # w on the VAE's reconstruction term (README: walker2d 1.5)
    hidden_dims: tuple[int, ...] = (256, 256, 256)  # the actor (A2PR_Actor: 3x256)
    critic_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)  # both critics and V (4x256)
    vae_hidden_dims: tuple[int, ...] = (750, 750)  # VAE encoder and decoder (A2PR.py)
    latent_dim: int | None = None  # VAE latent size; None: 2 * action_dim (A2PR.py)
    value_lr: float = 3e-4  # Adam for V (A2PR.py)
    vae_lr: float = 1e-3  # Adam for the VAE (torch's default lr; A2PR.py passes none)


@register("a2pr")
class A2PR(TD3BC):
    """TD3+BC whose BC target is the higher-advantage of the dataset action and an
    advantage-filtered VAE's action, weighted by the paper's mask."""

    Config = A2PRConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        for field in ("mask", "vae_weight"):
            value = getattr(cfg, field)
            if not value >= 0.0:
                raise ConfigError(f"must be >= 0, got {value}", path=self.name, field=field)
        if cfg.latent_dim is not None and not (
            isinstance(cfg.latent_dim, int) and cfg.latent_dim >= 1
        ):
            raise ConfigError(
                f"must be an integer >= 1 or None (2 * action_dim), got {cfg.latent_dim!r}",
                path=self.name,
                field="latent_dim",
            )
        for field in ("hidden_dims", "critic_hidden_dims", "vae_hidden_dims"):
            dims = getattr(cfg, field)
            if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
                raise ConfigError(
                    f"must be one or more layer widths >= 1, e.g. (256, 256), got {dims!r}",
                    path=self.name,
                    field=field,
                )
        super().setup(spec)  # TD3+BC's actor (hidden_dims) and optimizers, policy_freq's check
        self.critic = EnsembleCritic(
            cfg.critic_hidden_dims, n_critics=2, init_scheme=cfg.init_scheme
        )
        self.value = ValueNet(cfg.critic_hidden_dims)
        self.latent_dim = cfg.latent_dim or 2 * spec.action_dim
        self.vae = ConditionalVAE(spec.action_dim, self.latent_dim, cfg.vae_hidden_dims)
        self.value_opt = optax.adam(cfg.value_lr)
        self.vae_opt = optax.adam(cfg.vae_lr)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        k_td3, k_value, k_vae = jax.random.split(key, 3)
        state = super().init(spec, k_td3)  # calls setup
        obs = jnp.zeros((1, spec.observation_dim))
        act = jnp.zeros((1, spec.action_dim))
        value = self.value.init(k_value, obs)
        vae = self.vae.init(k_vae, obs, act, jnp.zeros((1, self.latent_dim)))
        return dict(
            state,
            value=value,
            value_opt=self.value_opt.init(value),
            vae=vae,
            vae_opt=self.vae_opt.init(vae),
        )

    def value_loss(self, value_params, state, obs, batch, key):
        """``(mean (V(s) - t)^2, V(s))``: ``t`` the smaller of the TD targets through the current
        and the target critics at the same smoothed next action (``key`` as the critics')."""
        next_obs, next_actions, target = self.smoothed_target(state, batch, key)
        next_q = self.critic.apply(state["critic"], next_obs, next_actions).min(axis=0)
        online = td_target(batch["rewards"], batch["terminals"], next_q, self.config.discount)
        v = self.value.apply(value_params, obs)
        return jnp.mean((v - jnp.minimum(online, target)) ** 2), v

    def vae_loss(self, vae_params, obs, actions, positive, key):
        """``(loss, (reconstruction term, KL))``: reconstruction of the dataset actions whose
        advantage is positive (``positive`` ``[B]`` bool), weighted by ``vae_weight``; the KL to
        ``N(0, I)`` with weight 0.5. ``key`` draws the latent noise."""
        eps = jax.random.normal(key, (obs.shape[0], self.latent_dim))
        recon, mean, log_std = self.vae.apply(vae_params, obs, actions, eps)
        weight = self.config.vae_weight * positive.astype(recon.dtype)[:, None]
        recon_loss = jnp.mean(weight * (recon - actions) ** 2)
        kl = -0.5 * jnp.mean(1.0 + 2.0 * log_std - mean**2 - jnp.exp(2.0 * log_std))
        return recon_loss + 0.5 * kl, (recon_loss, kl)

    def actor_loss(self, actor_params, critic_params, obs, actions, q_data, v, vae_params, key):
        """``(L_pi, (BC term, share of VAE targets, mean mask))``; ``q_data = Q_1(s, a)`` and
        ``v = V(s)`` are constants, ``key`` draws the VAE's latent noise."""
        cfg = self.config
        pi = self.actor.apply(actor_params, obs)
        q = self.critic.apply(critic_params, obs, pi)[0]
        lmbda = jax.lax.stop_gradient(cfg.alpha / jnp.mean(jnp.abs(q)))
        eps = jax.random.normal(key, (obs.shape[0], self.latent_dim))
        recon_pi, _, _ = self.vae.apply(vae_params, obs, pi, eps)  # gradient flows through it
        q_recon = self.critic.apply(critic_params, obs, recon_pi)[0]
        use_vae = q_recon - v >= q_data - v  # A_pi >= A_D
        target = jnp.where(use_vae[:, None], recon_pi, actions)
        weight = cfg.mask * ((q_recon >= v).astype(pi.dtype) + (q_data > v).astype(pi.dtype))
        weight = jax.lax.stop_gradient(weight)
        bc = jnp.mean(weight[:, None] * (pi - target) ** 2)
        return -lmbda * jnp.mean(q) + bc, (bc, use_vae.mean(), weight.mean())

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        k_critic, k_vae, k_actor = jax.random.split(key, 3)
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])

        (critic_loss, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state["critic"], state, obs, actions, batch, k_critic
        )
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )
        state = dict(state, critic=critic, critic_opt=critic_opt)

        (value_loss, v), grads = jax.value_and_grad(self.value_loss, has_aux=True)(
            state["value"], state, obs, batch, k_critic
        )
        value, value_opt = gradient_step(self.value_opt, state["value"], state["value_opt"], grads)
        state = dict(state, value=value, value_opt=value_opt)

        q_data = self.critic.apply(state["critic"], obs, actions)[0]
        positive = q_data > v
        (vae_loss, (recon_loss, kl)), grads = jax.value_and_grad(self.vae_loss, has_aux=True)(
            state["vae"], obs, actions, positive, k_vae
        )
        vae, vae_opt = gradient_step(self.vae_opt, state["vae"], state["vae_opt"], grads)
        state = dict(state, vae=vae, vae_opt=vae_opt)

        state, (actor_loss, (bc, vae_share, mask_mean)) = delayed_actor_update(
            state,
            self.actor_loss,
            self.actor_opt,
            cfg.tau,
            cfg.policy_freq,
            obs,
            actions,
            q_data,
            v,
            state["vae"],
            k_actor,
        )
        state = dict(state, step=state["step"] + 1)
        return state, {
            "critic_loss": critic_loss,
            "q_mean": q_mean,
            "value_loss": value_loss,
            "v_mean": v.mean(),
            # share of the batch's dataset actions with Q_1(s, a) > V(s): what the VAE learns
            "positive_share": positive.mean(),
            "vae_loss": vae_loss,
            "vae_recon_loss": recon_loss,
            "vae_kl": kl,
            "actor_loss": actor_loss,
            "bc_loss": bc,
            # share of actor targets that are the VAE's action; the mean mask weight
            "vae_target_share": vae_share,
            "bc_mask_mean": mask_mean,
        }
