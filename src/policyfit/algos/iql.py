"""IQL — "Offline Reinforcement Learning with Implicit Q-Learning" (Kostrikov, Nair & Levine, 2021).

IQL never queries Q on actions outside the dataset. Three regressions per step:

* value, expectile regression of the target critic (Eq. 5):
  ``L_V = E_(s,a)~D [ L_tau( min_i Q'_i(s, a) - V(s) ) ]``,  ``L_tau(u) = |tau - 1(u<0)| u^2``;
* critics, TD regression onto V (Eq. 6): ``L_Q = E [ (r + gamma (1 - d) V(s') - Q_i(s, a))^2 ]``;
* actor, advantage-weighted regression (Eq. 7):
  ``L_pi = -E [ min(exp(beta (Q'(s, a) - V(s))), 100) log pi(a|s) ]``.

Defaults: the paper's locomotion settings (Appendix B) as in CORL ``iql.py`` — ``tau = 0.7``,
``beta = 3``, weights clipped at 100, Adam 3e-4, cosine decay of the actor's learning rate and
observation normalization — with one deliberate change, the reward scale:

* the paper scales rewards by ``1000 / (max return - min return)`` of the dataset's episodes
  (``reward_normalization="return_range"``). On D4RL locomotion this happens to make the mean
  ``|r|`` per step about 1 (hopper-medium 1.07, halfcheetah-medium 0.85, walker2d-medium 0.8), and
  ``beta = 3`` was tuned at that scale. On data whose episode returns are narrowly spread the same
  formula inflates the rewards: policyfit's hopper-medium (returns 754-1299) gets 5.5 per step,
  which multiplies the effective ``beta`` by ~5, saturates the clipped weights and collapses the
  policy (normalized score 27 after 10k updates, 6.4 from 20k on; see the issue 4 note);
* the default ``"per_step"`` divides rewards by their mean ``|r|`` over the dataset, which gives
  the scale the paper's formula gives on D4RL, on any data. ``"none"`` leaves rewards alone.

Robust IQL (Yang et al. 2024, "Towards Robust Offline RL under Diverse Data Corruption") is this
file with flags: ``n_critics = K`` (5), ``value_quantile = alpha`` (the alpha-quantile over the
ensemble replaces the minimum in L_V, Eq. 7 of that paper) and ``huber_delta = delta`` (Huber
instead of squared loss in L_Q, Eq. 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import (
    awr_weights,
    ensemble_quantile,
    expectile_loss,
    gradient_step,
    huber_loss,
    soft_update,
    td_target,
)
from policyfit.algos.propensity import box_action_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import DeterministicPolicy, EnsembleCritic, GaussianPolicy, ValueNet
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)

REWARD_NORMALIZATIONS = ("per_step", "return_range", "none")


def reward_scale(spec: DatasetSpec, mode: str) -> float:
    """The factor rewards are multiplied by: ``1 / mean|r|``, ``1000 / return span`` or 1.

    Example:
        >>> spec = DatasetSpec(3, 1, return_min=0.0, return_max=500.0, reward_abs_mean=4.0)
        >>> [reward_scale(spec, mode) for mode in REWARD_NORMALIZATIONS]
        [0.25, 2.0, 1.0]
    """
    if mode == "per_step" and spec.reward_abs_mean > 0:
        return 1.0 / spec.reward_abs_mean
    span = spec.return_max - spec.return_min
    if mode == "return_range" and span > 0:
        return 1000.0 / span
    return 1.0


@dataclass(frozen=True)
class IQLConfig(AlgoConfig):
    expectile: float = 0.7  # tau in Eq. 5 (locomotion: 0.7)
    temperature: float = 3.0  # beta, inverse temperature of AWR extraction (locomotion: 3.0)
    max_weight: float = 100.0  # clip of exp(beta * A) (reference code, CORL EXP_ADV_MAX)
    tau: float = 0.005  # target critic Polyak rate
    actor_lr: float = 3e-4  # Adam, all three networks (paper Appendix B, CORL)
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)  # actor, critics and value net
    cosine_schedule: bool = True  # cosine decay of the actor lr over `schedule_steps`
    schedule_steps: int = 1_000_000  # the trainer sets this to --steps unless given
    deterministic_actor: bool = False  # CORL `iql_deterministic`: MSE-weighted deterministic actor
    normalize_observations: bool = True  # CORL `normalize=True`
    # "per_step": r / mean|r| (default, see the module docstring); "return_range": the paper's
    # r * 1000 / (max return - min return); "none"
    reward_normalization: str = "per_step"
    # --- Robust IQL (Yang et al. 2024); the defaults here are plain IQL ---
    n_critics: int = 2  # K; RIQL uses 5
    value_quantile: float | None = None  # alpha; None = min over critics; RIQL: 0.1 / 0.25 / 0.5
    huber_delta: float | None = None  # delta of the Huber critic loss; None = squared loss
    # clip the TD target r + gamma V(s') into [low, high]; None = no clipping; RIQL: (-100, 1000)
    target_clip: tuple[float, ...] | None = None
    # observation statistics over observations and next observations together (RIQL)
    normalize_with_next: bool = False


@register("iql")
class IQL(Algorithm):
    """Implicit Q-learning (and Robust IQL through its flags)."""

    Config = IQLConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if not 0.0 < cfg.expectile < 1.0:
            raise ConfigError("must lie in (0, 1)", path=self.name, field="expectile")
        if cfg.value_quantile is not None and not 0.0 <= cfg.value_quantile <= 1.0:
            raise ConfigError(
                "must lie in [0, 1] or be None", path=self.name, field="value_quantile"
            )
        if cfg.reward_normalization not in REWARD_NORMALIZATIONS:
            raise ConfigError(
                f"must be one of {', '.join(REWARD_NORMALIZATIONS)}",
                path=self.name,
                field="reward_normalization",
            )
        if cfg.target_clip is not None and (
            len(cfg.target_clip) != 2 or cfg.target_clip[0] >= cfg.target_clip[1]
        ):
            raise ConfigError(
                "must be two numbers low,high with low < high, or None",
                path=self.name,
                field="target_clip",
            )
        if cfg.n_critics < 1:
            raise ConfigError("must be >= 1", path=self.name, field="n_critics")
        self.spec = spec
        if cfg.deterministic_actor:
            self.actor = DeterministicPolicy(spec.action_dim, cfg.hidden_dims)
        else:
            self.actor = GaussianPolicy(spec.action_dim, cfg.hidden_dims)
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=cfg.n_critics)
        self.value = ValueNet(cfg.hidden_dims)
        actor_lr = (
            optax.cosine_decay_schedule(cfg.actor_lr, max(1, cfg.schedule_steps))
            if cfg.cosine_schedule
            else cfg.actor_lr
        )
        self.actor_opt = optax.adam(actor_lr)
        self.critic_opt = optax.adam(cfg.critic_lr)
        self.value_opt = optax.adam(cfg.value_lr)
        self.reward_scale = reward_scale(spec, cfg.reward_normalization)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k_actor, k_critic, k_value = jax.random.split(key, 3)
        obs = jnp.zeros((1, spec.observation_dim))
        act = jnp.zeros((1, spec.action_dim))
        actor = self.actor.init(k_actor, obs)
        critic = self.critic.init(k_critic, obs, act)
        value = self.value.init(k_value, obs)
        return {
            "actor": actor,
            "actor_opt": self.actor_opt.init(actor),
            "critic": critic,
            "critic_target": critic,
            "critic_opt": self.critic_opt.init(critic),
            "value": value,
            "value_opt": self.value_opt.init(value),
            "obs_norm": stats_from_spec(
                spec,
                enabled=self.config.normalize_observations,
                with_next=self.config.normalize_with_next,
            ),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    # Eq. 5: expectile regression of V towards the (ensemble-reduced) target critic.
    def value_loss(self, value_params, target_q, obs):
        v = self.value.apply(value_params, obs)
        adv = target_q - v
        return jnp.mean(expectile_loss(adv, self.config.expectile)), (v, adv)

    # Eq. 6: TD regression of every critic onto r + gamma V(s').
    def critic_loss(self, critic_params, obs, actions, target):
        q = self.critic.apply(critic_params, obs, actions)
        diff = q - target
        if self.config.huber_delta is None:
            per_critic = jnp.mean(diff**2, axis=1)
        else:
            per_critic = jnp.mean(huber_loss(diff, self.config.huber_delta), axis=1)
        return jnp.mean(per_critic), q.mean()

    # Eq. 7: advantage-weighted regression onto the dataset's actions.
    def actor_loss(self, actor_params, obs, actions, adv):
        weights = awr_weights(adv, self.config.temperature, self.config.max_weight)
        out = self.actor.apply(actor_params, obs)
        if self.config.deterministic_actor:
            nll = jnp.sum((out - actions) ** 2, axis=-1)
        else:
            nll = -out.log_prob(actions)
        return jnp.mean(weights * nll), weights.mean()

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        rewards = batch["rewards"] * self.reward_scale

        target_q = ensemble_quantile(
            self.critic.apply(state["critic_target"], obs, actions), cfg.value_quantile
        )
        (value_loss, (v, adv)), grads = jax.value_and_grad(self.value_loss, has_aux=True)(
            state["value"], target_q, obs
        )
        value, value_opt = gradient_step(self.value_opt, state["value"], state["value_opt"], grads)

        next_v = self.value.apply(state["value"], next_obs)
        target = td_target(rewards, batch["terminals"], next_v, cfg.discount)
        if cfg.target_clip is not None:
            target = jnp.clip(target, cfg.target_clip[0], cfg.target_clip[1])
        (critic_loss, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state["critic"], obs, actions, target
        )
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )

        (actor_loss, mean_weight), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state["actor"], obs, actions, jax.lax.stop_gradient(adv)
        )
        actor, actor_opt = gradient_step(self.actor_opt, state["actor"], state["actor_opt"], grads)

        new_state = dict(
            state,
            actor=actor,
            actor_opt=actor_opt,
            critic=critic,
            critic_target=soft_update(state["critic_target"], critic, cfg.tau),
            critic_opt=critic_opt,
            value=value,
            value_opt=value_opt,
            step=state["step"] + 1,
        )
        metrics = {
            "value_loss": value_loss,
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "q_mean": q_mean,
            "v_mean": v.mean(),
            "adv_weight_mean": mean_weight,
        }
        return new_state, metrics

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        out = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        if not self.config.deterministic_actor:
            out = out.mode() if key is None else jnp.clip(out.sample(key), -1.0, 1.0)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The Gaussian actor's log-density (clipped samples: atoms on the bounds); the
        deterministic actor has none (NotImplementedError)."""
        if self.config.deterministic_actor:
            return super().action_log_prob(params, obs, carry, actions)
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)


@dataclass(frozen=True)
class RIQLConfig(IQLConfig):
    """Robust IQL (Yang et al., ICLR 2024): IQL with the paper's robustness flags turned on.

    Defaults are the paper's common setting, checked against its code (``RIQL.py`` of
    github.com/YangRui2015/RIQL): K = 5 critics, the alpha = 0.25 quantile over the ensemble as
    the value target (Eq. 7), a Huber critic loss (Eq. 6) with threshold 1 (the code's
    ``sigma = 1``; its threshold is ``1 / sigma^2``), TD targets clipped to [-100, 1000],
    observation statistics over observations and next observations (eps 1e-3). The paper's code
    always builds a deterministic actor; here the Gaussian actor stays the default because, with
    jax 0.10.2 on this machine, XLA hung reproducibly in the first training chunk of every
    deterministic-actor IQL/RIQL run on walker2d-medium-replay (session 2 note). The paper tunes alpha in
    {0.1, 0.25, 0.5}, sigma and K per attack (``RIQL_config.py``); ``benchmarks/corruption.py``
    passes those per-attack values, converting sigma to ``huber_delta = 1 / sigma^2``.
    Rewards use policyfit's ``per_step`` scale like ``iql`` (the code: ``1000 / return range``),
    so that IQL and RIQL differ only in the robustness pieces.
    """

    n_critics: int = 5
    value_quantile: float | None = 0.25
    huber_delta: float | None = 1.0
    target_clip: tuple[float, ...] | None = (-100.0, 1000.0)
    normalize_with_next: bool = True


@register("riql")
class RIQL(IQL):
    """``policyfit train riql``: :class:`IQL` with :class:`RIQLConfig`'s defaults (no copy of IQL)."""

    Config = RIQLConfig
