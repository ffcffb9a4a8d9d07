"""Demonstration-regularized RL (Tiapkin et al. 2024), offline: a KL penalty toward a BC prior.

Tiapkin, Belomestny, Calandriello, Moulines, Munos, Naumov, Perrault, Valko & Ménard,
"Demonstration-Regularized RL" (ICLR 2024, arXiv 2310.17303).

The paper's recipe has two phases:

1. behaviour cloning: ``pi_BC = argmax_pi sum_i log pi(a_i | s_i)`` over the demonstrations, with a
   log-regularization that keeps a minimum probability on every action (finite MDPs) so that the
   KL to ``pi_BC`` of any policy stays finite;
2. KL-regularized RL: ``max_pi E_pi [sum_t r_t] - lambda E_pi [sum_t KL(pi(.|s_t) || pi_BC(.|s_t))]``,
   whose soft-Bellman solution is ``pi(a|s) ∝ pi_BC(a|s) exp(Q(s, a) / lambda)``.

Here, offline and with neural networks:

* phase 1 (``pretrain_steps = prior_steps`` updates of :meth:`DemoReg.pretrain_update`): a
  tanh-Gaussian prior ``pi_BC`` (SAC's :class:`~policyfit.nn.TanhGaussianPolicy`) fitted by maximum
  likelihood of the dataset's actions; its pre-tanh standard deviation never falls below
  ``min_std``. That floor plays the role of the paper's log-regularization: every action in the
  box keeps a density bounded away from zero on any compact set, so ``log pi_BC(a|s)`` and the KL of
  any policy to the prior are finite. The prior is frozen afterwards; it lives in the train state,
  so checkpoints and exact resume keep it. The actor has the same network and the same floor, and
  starts as a copy of the prior (the paper itself plans with a regularized value iteration and has
  no actor to initialize; the copy makes the KL zero at the first main update);
* phase 2 (:meth:`DemoReg.update`), a KL-regularized soft actor-critic on the fixed data:

      y   = r + gamma (1 - d) [ min_i Q'_i(s', a') - lambda (log pi(a'|s') - log pi_BC(a'|s')) ],
            a' ~ pi(.|s')
      L_Q = sum_i E (Q_i(s, a) - y)^2
      L_pi = E_s E_{a ~ pi(.|s)} [ lambda (log pi(a|s) - log pi_BC(a|s)) - min_i Q_i(s, a) ]

  i.e. SAC (Haarnoja et al. 2018) with the entropy bonus replaced by the reverse KL to the prior,
  estimated with the reparameterized sample ``a = tanh(mu + sigma eps)``. Both log-densities carry
  the tanh Jacobian ``-sum log(1 - tanh(u)^2)``; it is the same for both at the same sample and
  cancels in the difference. Both losses use the state before the update; the target critics
  follow by Polyak averaging (``tau``).

Sources checked (issue 16): the paper's abstract (ICLR 2024 proceedings text), the alphaxiv
overview of 2310.17303v2 (the two phases; the BC log-regularization keeps a minimum probability on
every action), the research note ``shared/research/offline_families.md`` §10, and Papers with
Code's page for the paper, which shows no implementation; none of the authors' public repositories
(``d-tiapkin/*`` in the search index) is for this paper, so there is no official code to follow.
The paper is theory only (finite and linear MDPs, best-policy identification and RLHF): no
continuous-control algorithm, no D4RL or MuJoCo experiment, no hyperparameters to copy. Its
theory sets ``lambda`` from the target precision and the BC error bound (not checked in detail
here); nothing of it carries over to networks trained on logged data.

Defaults therefore come from SAC / CORL's SAC-N for the networks and optimizers (2x256, Adam 3e-4,
batch 256, ``gamma = 0.99``, ``tau = 0.005``, two critics, observation normalization). Rewards are
divided by their mean ``|r|`` (IQL's ``per_step`` scale, :mod:`policyfit.algos.iql`), so that
``lambda`` reads as "rewards of one average step paid per nat of KL" on any data. ``lambda = 10``
comes from a sweep on the Pendulum fixture (``tests/pendulum_data.py``, 4,000 transitions, 64x64
networks, 2,000 prior steps at lr 1e-3 then 20,000 KL-regularized updates, seed 0; return of 5
episodes at 10k / 20k updates; the prior alone scores -228, the data -373, random about -1200):

==========  ================  ==========  =============================================
lambda      return 10k / 20k  KL at 20k   mean Q at 20k (rewards <= 0: Q must be <= 0)
==========  ================  ==========  =============================================
0.3         -1461 / -1609     1.95        +441 (diverged)
1           -874 / -1611      1.36        +248 (diverged)
3           -905 / -1606      0.83        +108 (diverged)
10          -1013 / -934      0.07        -39
30          -435 / -748       0.01        -60
100         -227 / -231       0.002       -66 (the prior)
==========  ================  ==========  =============================================

Without pessimism (the paper needs none: it explores online) a weak pull lets the actor exploit
the critic's extrapolation and Q diverges; 10 is the smallest value that kept Q bounded. It is
also the scale at which the KL term weighs about what TD3+BC's BC term does (``alpha = 2.5``,
``lambda_TD3BC = alpha / mean|Q|`` with ``|Q|`` about 100 at this reward scale, against
``KL ≈ dmu^2 / (2 sigma^2)`` for a prior of pre-tanh std 0.3). On Pendulum no value beat the
prior at 20k updates; the suite (hopper, halfcheetah, walker2d) needs its own sweep of
``lambda in {3, 10, 30}``. ``min_std = 0.1`` and ``prior_steps = 20_000`` (Adam 3e-4, CORL's BC)
were not swept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.iql import REWARD_NORMALIZATIONS, reward_scale
from policyfit.algos.losses import gradient_step, soft_update, td_target
from policyfit.algos.propensity import box_action_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import EnsembleCritic, TanhGaussianPolicy
from policyfit.nn.modules import TanhNormal
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)

# Dataset actions on the bounds of the box are moved this far inside [-1, 1] before arctanh when
# the prior's likelihood is computed (tanh never reaches +-1; TanhNormal.log_prob does the same).
PRIOR_ACTION_EPS = 1e-6


@dataclass(frozen=True)
class DemoRegConfig(AlgoConfig):
    kl_weight: float = 10.0  # lambda: rewards (in units of mean |r| per step) paid per nat of KL
    prior_steps: int = 20_000  # phase 1: maximum-likelihood updates of the prior pi_BC
    min_std: float = 0.1  # pre-tanh std floor, prior and actor (the paper's log-regularization)
    backup_kl: bool = True  # subtract lambda KL in the critic target (the soft Bellman backup)
    n_critics: int = 2  # clipped double-Q (SAC)
    tau: float = 0.005  # target critic Polyak rate (SAC)
    prior_lr: float = 3e-4  # Adam (CORL's BC)
    actor_lr: float = 3e-4  # Adam (SAC)
    critic_lr: float = 3e-4  # Adam (SAC)
    hidden_dims: tuple[int, ...] = (256, 256)  # prior, actor and critics
    normalize_observations: bool = True  # dataset mean/std (eps 1e-3), as TD3+BC and CORL
    # "per_step": r / mean|r| (IQL's scale; lambda's unit), "return_range", "none"
    reward_normalization: str = "per_step"


def floored(dist: TanhNormal, log_std_min: float) -> TanhNormal:
    """``dist`` with its pre-tanh log-std raised to at least ``log_std_min``."""
    return TanhNormal(dist.mean, jnp.maximum(dist.log_std, log_std_min))


def sample_pre_tanh(dist: TanhNormal, key: jax.Array) -> jnp.ndarray:
    """A reparameterized pre-tanh sample ``u = mu + sigma eps`` (the action is ``tanh(u)``)."""
    return dist.mean + jnp.exp(dist.log_std) * jax.random.normal(key, dist.mean.shape)


def gaussian_kl(p: TanhNormal, q: TanhNormal) -> jnp.ndarray:
    """``KL(p || q)`` ``[B]`` in closed form: tanh is a bijection, so the KL of the squashed
    distributions equals that of the diagonal Gaussians (a diagnostic; the losses use samples)."""
    var_ratio = jnp.exp(2.0 * (p.log_std - q.log_std))
    mean_term = ((p.mean - q.mean) * jnp.exp(-q.log_std)) ** 2
    return 0.5 * jnp.sum(var_ratio + mean_term - 1.0 - jnp.log(var_ratio), axis=-1)


@register("demo_reg")
class DemoReg(Algorithm):
    """A behaviour-cloned prior, then a soft actor-critic with a reverse-KL penalty toward it."""

    Config = DemoRegConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if not cfg.kl_weight >= 0.0:
            raise ConfigError(
                f"must be >= 0, got {cfg.kl_weight}", path=self.name, field="kl_weight"
            )
        if cfg.prior_steps < 1:
            raise ConfigError(
                f"must be >= 1 (the prior is learned first), got {cfg.prior_steps}",
                path=self.name,
                field="prior_steps",
            )
        if not cfg.min_std > 0.0:
            raise ConfigError(f"must be > 0, got {cfg.min_std}", path=self.name, field="min_std")
        if cfg.n_critics < 1:
            raise ConfigError("must be >= 1", path=self.name, field="n_critics")
        if cfg.reward_normalization not in REWARD_NORMALIZATIONS:
            raise ConfigError(
                f"must be one of {', '.join(REWARD_NORMALIZATIONS)}",
                path=self.name,
                field="reward_normalization",
            )
        self.spec = spec
        self.policy_net = TanhGaussianPolicy(spec.action_dim, cfg.hidden_dims)
        self.critic = EnsembleCritic(cfg.hidden_dims, n_critics=cfg.n_critics)
        self.prior_opt = optax.adam(cfg.prior_lr)
        self.actor_opt = optax.adam(cfg.actor_lr)
        self.critic_opt = optax.adam(cfg.critic_lr)
        self.log_std_min = math.log(cfg.min_std)
        self.reward_scale = reward_scale(spec, cfg.reward_normalization)

    @property
    def pretrain_steps(self) -> int:
        return self.config.prior_steps

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k_prior, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, spec.observation_dim))
        act = jnp.zeros((1, spec.action_dim))
        prior = self.policy_net.init(k_prior, obs)
        critic = self.critic.init(k_critic, obs, act)
        copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # noqa: E731
        return {
            "prior": prior,
            "prior_opt": self.prior_opt.init(prior),
            "actor": copy(prior),  # the actor starts as the prior (set again by pretraining)
            "actor_opt": self.actor_opt.init(prior),
            "critic": critic,
            "critic_target": copy(critic),
            "critic_opt": self.critic_opt.init(critic),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def distribution(self, params, obs: jnp.ndarray) -> TanhNormal:
        """The floored tanh-Gaussian of the prior's or the actor's parameters at normalized ``obs``."""
        return floored(self.policy_net.apply(params, obs), self.log_std_min)

    # ------------------------------------------------------------------ phase 1: the prior
    def prior_loss(self, prior_params, obs, actions):
        """Negative log-likelihood of the (unit-box) dataset actions, tanh Jacobian included."""
        dist = self.distribution(prior_params, obs)
        log_prob = dist.log_prob(actions, eps=PRIOR_ACTION_EPS)
        return -jnp.mean(log_prob), jnp.exp(dist.log_std).mean()

    def pretrain_update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        """One maximum-likelihood step on the prior; the actor is set to the new prior."""
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        (nll, std), grads = jax.value_and_grad(self.prior_loss, has_aux=True)(
            state["prior"], obs, actions
        )
        prior, prior_opt = gradient_step(self.prior_opt, state["prior"], state["prior_opt"], grads)
        return dict(state, prior=prior, prior_opt=prior_opt, actor=prior), {
            "prior_nll": nll,
            "prior_std": std,
        }

    # ------------------------------------------------------------------ phase 2: KL-regularized AC
    def policy_sample(self, actor_params, prior_params, obs, key):
        """``(a, log pi(a|s), log pi_BC(a|s), closed-form KL)`` for ``a ~ pi(.|s)``, reparameterized."""
        dist = self.distribution(actor_params, obs)
        prior = self.distribution(prior_params, obs)
        u = sample_pre_tanh(dist, key)
        # log-densities of a = tanh(u): TanhNormal's change of variables (Jacobian included)
        log_pi = dist._log_prob_pre_tanh(u)
        log_prior = prior._log_prob_pre_tanh(u)
        return jnp.tanh(u), log_pi, log_prior, gaussian_kl(dist, prior)

    def critic_loss(self, critic_params, state, obs, actions, rewards, next_obs, terminals, key):
        cfg = self.config
        next_actions, next_log_pi, next_log_prior, _ = self.policy_sample(
            state["actor"], state["prior"], next_obs, key
        )
        next_q = self.critic.apply(state["critic_target"], next_obs, next_actions).min(axis=0)
        if cfg.backup_kl:
            next_q = next_q - cfg.kl_weight * (next_log_pi - next_log_prior)
        target = td_target(rewards, terminals, next_q, cfg.discount)
        q = self.critic.apply(critic_params, obs, actions)
        return jnp.mean((q - target) ** 2, axis=1).sum(), (q.mean(), target.mean())

    def actor_loss(self, actor_params, state, obs, key):
        new_actions, log_pi, log_prior, kl = self.policy_sample(
            actor_params, state["prior"], obs, key
        )
        q = self.critic.apply(state["critic"], obs, new_actions).min(axis=0)
        kl_sample = log_pi - log_prior
        loss = jnp.mean(self.config.kl_weight * kl_sample - q)
        return loss, (kl_sample.mean(), kl.mean(), log_pi.mean(), log_prior.mean())

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        cfg = self.config
        k_next, k_pi = jax.random.split(key)
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        next_obs = normalize_observations(batch["next_observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        rewards = batch["rewards"] * self.reward_scale

        (critic_loss, (q_mean, target_mean)), grads = jax.value_and_grad(
            self.critic_loss, has_aux=True
        )(state["critic"], state, obs, actions, rewards, next_obs, batch["terminals"], k_next)
        critic, critic_opt = gradient_step(
            self.critic_opt, state["critic"], state["critic_opt"], grads
        )

        (actor_loss, (kl, kl_closed, log_pi, log_prior)), grads = jax.value_and_grad(
            self.actor_loss, has_aux=True
        )(state["actor"], state, obs, k_pi)
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
            "target_mean": target_mean,
            "kl": kl,  # the sample estimate the actor loss uses
            "kl_closed_form": kl_closed,  # the same KL in closed form (diagnostic)
            "log_pi": log_pi,
            "log_prior": log_prior,
        }

    # ------------------------------------------------------------------ acting
    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        dist = self.distribution(params["actor"], normalize_observations(obs, params["obs_norm"]))
        out = dist.mode() if key is None else dist.sample(key)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The (floored) tanh-Gaussian actor's log-density in the action box."""
        dist = self.distribution(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=False)
