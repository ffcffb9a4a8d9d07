"""CQL — "Conservative Q-Learning for Offline Reinforcement Learning" (Kumar et al., 2020).

SAC (Haarnoja et al. 2018) whose critics are pushed down on actions the data does not contain and
up on the data's actions. CQL(H), Eq. 4 of the paper, per critic ``Q_i``:

    L_Q = alpha_cql * E_s [ log sum_a exp Q(s, a)  -  E_(a~D) Q(s, a) ]  +  1/2 E [ (Q(s, a) - y)^2 ]

The log-sum-exp over all actions is estimated by importance sampling (Appendix F) with ``N``
uniform actions, ``N`` actions of the current policy at ``s`` and ``N`` at ``s'``, each corrected by
its log density. ``y = r + gamma (1 - d) min_i Q'_i(s', a')``, ``a' ~ pi(s')``.

Variants: fixed ``alpha_cql`` (the paper's Gym setting, CORL default) or the Lagrange version
(Eq. 5, ``lagrange = True``) that tunes ``alpha'`` so the gap above stays near ``target_action_gap``.
The actor is SAC's, ``E [ alpha log pi(a|s) - min_i Q_i(s, a) ]`` with automatic entropy tuning;
optionally, for the first ``bc_steps`` updates, the actor does behavior cloning instead.

Defaults: CORL ``cql.py`` (Tarasov et al. 2022) with its per-dataset D4RL locomotion configs
(``configs/offline/cql/{halfcheetah,hopper,walker2d}/*_v2.yaml``, tinkoff-ai/CORL at commit
6afec90484bbf47dee05fdf525e26a3ebe028e9b):

* ``bc_steps = 0``: every one of those configs sets ``bc_steps: 0``, and CORL's ``train()`` passes
  it to ``ContinuousCQL`` (whose own keyword default, 100000, is therefore never used). Short runs
  on small data may want a warm-up (``--set bc_steps=1000``; the benchmarks set it explicitly);
* rewards as the data gives them: 17 of the 18 configs set ``normalize_reward: false``; only
  ``hopper-medium-v2`` rescales by ``1000 / (max return - min return)``. policyfit has no
  per-dataset CQL configs, so CQL keeps the raw rewards, the scale at which ``cql_alpha = 10`` was
  tuned (IQL's ``reward_normalization`` is an IQL option, not a CQL one).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import gradient_step, soft_update, td_target
from policyfit.algos.propensity import box_action_log_prob
from policyfit.nn import EnsembleCritic, TanhGaussianPolicy
from policyfit.nn.modules import TanhNormal
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)


@dataclass(frozen=True)
class CQLConfig(AlgoConfig):
    # alpha in Eq. 4 (CORL locomotion: 10.0; paper Gym: 5.0). Rewards enter unscaled, as in 17 of
    # CORL's 18 locomotion configs (normalize_reward: false; hopper-medium-v2 is the exception)
    cql_alpha: float = 10.0
    cql_n_actions: int = 10  # N sampled actions per source for the log-sum-exp (paper, CORL)
    cql_temperature: float = 1.0  # temperature of the log-sum-exp (CORL `cql_temp`)
    cql_importance_sample: bool = True  # Appendix F estimator (CORL default)
    lagrange: bool = False  # Eq. 5: tune alpha' to keep the CQL gap at `target_action_gap`
    target_action_gap: float = 5.0  # tau of the Lagrange variant (authors' code: 5.0 for Gym)
    cql_clip_diff_min: float = -np.inf  # CORL: no clipping of the CQL gap
    cql_clip_diff_max: float = np.inf
    # behavior-cloning actor warm-up: 0 as in every CORL per-dataset config (configs/offline/cql,
    # bc_steps: 0; the 100000 of ContinuousCQL's signature is never used); short runs may want ~1000
    bc_steps: int = 0
    backup_entropy: bool = False  # subtract alpha log pi in the target (CORL: False)
    auto_entropy: bool = True  # SAC's automatic temperature, target entropy = -|A|
    alpha_multiplier: float = 1.0  # fixed SAC alpha when auto_entropy is off
    tau: float = 0.005  # target network Polyak rate (CORL soft_target_update_rate)
    actor_lr: float = 3e-5  # CORL `policy_lr` (the paper: 1e-4 / 3e-5)
    critic_lr: float = 3e-4  # CORL `qf_lr`
    hidden_dims: tuple[int, ...] = (256, 256, 256)  # CORL: 3 hidden layers for actor and critics
    normalize_observations: bool = True  # CORL `normalize=True`


@register("cql")
class CQL(Algorithm):
    """Conservative Q-learning (SAC-based, continuous actions)."""

    Config = CQLConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        self.spec = spec
        self.actor = TanhGaussianPolicy(spec.action_dim, cfg.hidden_dims)
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=2)
        self.actor_opt = optax.adam(cfg.actor_lr)
        self.critic_opt = optax.adam(cfg.critic_lr)
        self.alpha_opt = optax.adam(cfg.actor_lr)  # CORL: same rate as the policy
        self.alpha_prime_opt = optax.adam(cfg.critic_lr)  # CORL: same rate as the critics
        self.target_entropy = -float(spec.action_dim)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, spec.observation_dim))
        act = jnp.zeros((1, spec.action_dim))
        actor = self.actor.init(k_actor, obs)
        critic = self.critic.init(k_critic, obs, act)
        log_alpha = jnp.zeros((), jnp.float32)  # alpha = 1 at the start (CORL)
        log_alpha_prime = jnp.ones((), jnp.float32)  # CORL initial value
        return {
            "actor": actor,
            "actor_opt": self.actor_opt.init(actor),
            "critic": critic,
            "critic_target": critic,
            "critic_opt": self.critic_opt.init(critic),
            "log_alpha": log_alpha,
            "alpha_opt": self.alpha_opt.init(log_alpha),
            "log_alpha_prime": log_alpha_prime,
            "alpha_prime_opt": self.alpha_prime_opt.init(log_alpha_prime),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def alpha(self, log_alpha):
        if self.config.auto_entropy:
            return jnp.exp(log_alpha) * self.config.alpha_multiplier
        return jnp.float32(self.config.alpha_multiplier)

    # SAC's actor loss; behavior cloning (log-likelihood of the data) during the first bc_steps.
    def actor_loss(self, actor_params, critic_params, alpha, obs, actions, step, key):
        dist = self.actor.apply(actor_params, obs)
        new_actions, log_pi = dist.sample_and_log_prob(key)
        q_new = self.critic.apply(critic_params, obs, new_actions).min(axis=0)
        bc_log_prob = dist.log_prob(actions)
        objective = jnp.where(step < self.config.bc_steps, bc_log_prob, q_new)
        return jnp.mean(alpha * log_pi - objective), log_pi

    def alpha_loss(self, log_alpha, log_pi):
        return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_pi + self.target_entropy))

    # Eq. 4 (or Eq. 5 with lagrange) plus the TD error, summed over the two critics.
    def critic_loss(self, critic_params, state, alpha, obs, actions, next_obs, batch, key):
        cfg = self.config
        n, (batch_size, act_dim) = cfg.cql_n_actions, actions.shape
        k_next, k_rand, k_cur, k_cql_next = jax.random.split(key, 4)

        q_pred = self.critic.apply(critic_params, obs, actions)  # [2, B]
        next_dist = self.actor.apply(state["actor"], next_obs)
        next_actions, next_log_pi = next_dist.sample_and_log_prob(k_next)
        next_q = self.critic.apply(state["critic_target"], next_obs, next_actions).min(axis=0)
        if cfg.backup_entropy:
            next_q = next_q - alpha * next_log_pi
        target = td_target(batch["rewards"], batch["terminals"], next_q, cfg.discount)
        td_loss = jnp.mean((q_pred - target) ** 2, axis=1)  # [2]

        # N actions from each proposal; the policy network is evaluated once per state.
        def repeat(dist):
            mean = jnp.broadcast_to(dist.mean, (n, batch_size, act_dim))
            return TanhNormal(mean, jnp.broadcast_to(dist.log_std, mean.shape))

        cur_dist = self.actor.apply(state["actor"], obs)
        cur_actions, cur_log_pi = repeat(cur_dist).sample_and_log_prob(k_cur)
        nxt_actions, nxt_log_pi = repeat(next_dist).sample_and_log_prob(k_cql_next)
        rand_actions = jax.random.uniform(k_rand, (n, batch_size, act_dim), minval=-1.0, maxval=1.0)
        proposals = jax.lax.stop_gradient(jnp.concatenate([rand_actions, nxt_actions, cur_actions]))
        obs_rep = jnp.broadcast_to(obs, (3 * n, *obs.shape))
        q_ood = self.critic.apply(critic_params, obs_rep, proposals)  # [2, 3N, B]
        if cfg.cql_importance_sample:
            log_density = jnp.concatenate(
                [
                    jnp.full((n, batch_size), act_dim * np.log(0.5)),  # uniform on [-1, 1]^|A|
                    nxt_log_pi,
                    cur_log_pi,
                ]
            )
            q_ood = q_ood - jax.lax.stop_gradient(log_density)[None]
        else:
            q_ood = jnp.concatenate([q_ood, q_pred[:, None]], axis=1)
        temp = cfg.cql_temperature
        logsumexp = jax.scipy.special.logsumexp(q_ood / temp, axis=1) * temp  # [2, B]
        gap = jnp.clip(logsumexp - q_pred, cfg.cql_clip_diff_min, cfg.cql_clip_diff_max).mean(1)
        if cfg.lagrange:
            alpha_prime = jnp.clip(jnp.exp(state["log_alpha_prime"]), 0.0, 1e6)
            cql_loss = alpha_prime * cfg.cql_alpha * (gap - cfg.target_action_gap)
        else:
            cql_loss = cfg.cql_alpha * gap
        return jnp.sum(td_loss) + jnp.sum(cql_loss), (td_loss.mean(), gap, q_pred.mean())

    # Eq. 5's dual step: raise alpha' while the gap exceeds the target.
    def alpha_prime_loss(self, log_alpha_prime, gap):
        alpha_prime = jnp.clip(jnp.exp(log_alpha_prime), 0.0, 1e6)
        gap = jax.lax.stop_gradient(gap)
        return -0.5 * jnp.sum(
            alpha_prime * self.config.cql_alpha * (gap - self.config.target_action_gap)
        )

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        k_actor, k_critic = jax.random.split(key)
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        alpha = self.alpha(state["log_alpha"])

        (actor_loss, log_pi), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state["actor"], state["critic"], alpha, obs, actions, state["step"], k_actor
        )
        actor, actor_opt = gradient_step(self.actor_opt, state["actor"], state["actor_opt"], grads)

        log_alpha, alpha_opt = state["log_alpha"], state["alpha_opt"]
        if cfg.auto_entropy:
            grads = jax.grad(self.alpha_loss)(log_alpha, log_pi)
            updates, alpha_opt = self.alpha_opt.update(grads, alpha_opt, log_alpha)
            log_alpha = optax.apply_updates(log_alpha, updates)

        (critic_loss, (td_loss, gap, q_mean)), grads = jax.value_and_grad(
            self.critic_loss, has_aux=True
        )(state["critic"], state, alpha, obs, actions, next_obs, batch, k_critic)
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )

        log_alpha_prime, alpha_prime_opt = state["log_alpha_prime"], state["alpha_prime_opt"]
        if cfg.lagrange:
            grads = jax.grad(self.alpha_prime_loss)(log_alpha_prime, gap)
            updates, alpha_prime_opt = self.alpha_prime_opt.update(
                grads, alpha_prime_opt, log_alpha_prime
            )
            log_alpha_prime = optax.apply_updates(log_alpha_prime, updates)

        new_state = dict(
            state,
            actor=actor,
            actor_opt=actor_opt,
            critic=critic,
            critic_target=soft_update(state["critic_target"], critic, cfg.tau),
            critic_opt=critic_opt,
            log_alpha=log_alpha,
            alpha_opt=alpha_opt,
            log_alpha_prime=log_alpha_prime,
            alpha_prime_opt=alpha_prime_opt,
            step=state["step"] + 1,
        )
        metrics = {
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            "td_loss": td_loss,
            "cql_gap": gap.mean(),
            "q_mean": q_mean,
            "alpha": alpha,
            "entropy": -log_pi.mean(),
        }
        return new_state, metrics

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        out = dist.mode() if key is None else dist.sample(key)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The tanh-Gaussian actor's log-density in the action box."""
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=False)
