"""MBRCSL: model-based return-conditioned supervised learning (stitching without Bellman backups).

Zhou, Zhu, Zhou, Cui, Gupta & Du (ICLR 2024), "Free from Bellman Completeness: Trajectory
Stitching via Model-based Return-conditioned Supervised Learning". Return-conditioned supervised
learning (RCSL, e.g. RvS-R) cannot do better than the best trajectory in its data; MBRCSL first
*makes* better trajectories by stitching the data's pieces together with learned models, then does
RCSL on those:

1. **models** (the trainer's pretraining phase): a probabilistic dynamics ensemble
   ``p_psi(s' - s, r | s, a)`` (diagonal Gaussians, NLL) and a behaviour policy ``mu(a | s)``
   fitted to the data;
2. **rollouts** (the last pretraining step): from start states of the data, roll ``mu`` through
   the ensemble (a random elite member per trajectory and step) for ``H`` steps; keep a rollout
   only if its model return beats the best episode return in the data (the *return filter*),
   until ``N_traj`` rollouts are kept;
3. **RCSL** (the main updates): fit ``pi(a | s, g)`` on the kept rollouts, ``g`` the rollout's
   return-to-go; at test time ``g_0`` is the best kept rollout return and every reward earned is
   subtracted from it.

Checked against the official code, ``zhaoyizhou1123/mbrcsl`` @
89863177e46b7d58c27bc2369376a5718299279b:

* ``examples/pointmaze/run_mbrcsl_maze.py``: the point-maze defaults (ensemble 7 / 5 elites,
  4 x 200, lr 1e-3, per-layer weight decay 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4; rollout batch 200,
  ``horizon`` 200, ``num_need_traj`` 100, ``rollout_epoch`` 1000; RCSL MLP 1024-1024, Adam 5e-5
  with ``weight_decay`` 0.1, batch 256), ``rollout_simple`` (no termination, the return-to-go of
  step ``t`` is the rollout return minus the rewards before ``t``), ``get_rollout_trajs`` (keep
  ``return > max offline return``; the RCSL trainer gets the rollouts only, ``offline_ratio=1.``
  of ``offline_dataset=rollout_dataset``; the evaluation goal is the best kept return);
* ``offlinerlkit/modules/dynamics_module.py`` (``EnsembleDynamicsModel``: Swish, one
  ``EnsembleLinear`` per layer with its own weight decay, outputs mean and log-variance of
  ``(delta s, r)``, the log-variance soft-clamped between learned ``min_logvar`` (init -10) and
  ``max_logvar`` (init 0.5); ``random_elite_idxs``) and ``offlinerlkit/nets/ensemble_linear.py``
  (truncated-normal init with std ``1 / (2 sqrt(fan_in))``, decay ``wd * 0.5 * ||W||^2``);
* ``offlinerlkit/dynamics/ensemble_dynamics.py``: ``learn`` (per member the mean over batch and
  dimensions of ``(mu - y)^2 exp(-logvar) + logvar``, summed over members, plus the decay and
  ``0.01 * (sum max_logvar - sum min_logvar)``), ``validate`` (holdout MSE of the mean), elites =
  the members with the lowest holdout MSE, ``step`` (a Gaussian sample of the chosen member;
  ``s' = s + delta``);
* ``offlinerlkit/utils/termination_fns.py``: the point maze falls to ``termination_fn_default``
  (never terminal) and ``rollout_simple`` ignores terminals anyway;
* ``offlinerlkit/policy/rcsl/rcsl_mlp.py``, ``offlinerlkit/modules/rcsl_module.py``: RCSL is an MLP
  on ``[s, rtg]`` trained with the squared error of the action;
* ``offlinerlkit/policy_trainer/rcsl_policy_trainer.py``: evaluation starts at ``goal`` and
  subtracts every reward from it (``rtg = rtg - reward``).

Simplifications (each is a config value or a documented choice):

* **Behaviour policy**: a mixture-of-Gaussians MLP fitted by maximum likelihood
  (``behavior_components`` = 5) instead of the paper's diffusion policy (``SimpleDiffusionPolicy``,
  10 denoising steps, 50 epochs). What the rollouts need from ``mu`` is its multi-modality: at the
  maze's start half the data heads for (2, 2) and half for the detour, and at (2, 2) some of it
  holds and some of it moves on toward the goal; a single Gaussian would average these modes, a
  mixture keeps them. A diffusion sampler costs ten network passes per action inside a
  ``rounds x H`` rollout loop and its own long training run, which CPU budgets do not afford.
  ``behavior_components=1`` is Gaussian BC.
* **One pretraining phase**: the ensemble and the behaviour policy take one gradient step each on
  every pretraining batch (``pretrain_steps`` of them) instead of the official early-stopped
  epochs (dynamics: until 5 epochs without 1% holdout improvement; diffusion: 50 epochs, about
  39k steps of 256 on the maze's 200k transitions).
* **Bootstrap and holdout**: each member weights the shared batch with Poisson(1) counts (the
  online form of the official per-member bootstrap resampling). ``dynamics_holdout`` (10%) of the
  transitions, fixed by the sampler, train no member; their squared error, a decayed running mean
  over the pretraining steps, ranks the members, the best ``dynamics_elites`` being the elites
  (official: 20% capped at 1,000 transitions, and each member's best-holdout weights restored;
  here the last weights are kept).
* **Inputs**: observations are standardized with the data's statistics and actions mapped to
  [-1, 1] from the action box (the official ``StandardScaler`` standardizes ``(s, a)`` together).
  The RCSL policy sees ``rtg`` divided by the best data return's magnitude (the official network
  sees the raw ``rtg``): a fixed rescaling of the input.
* **RCSL loss**: RvS-R's Gaussian policy (tanh mean, state-independent log-std) and its negative
  log-likelihood; with a state-independent std the mean minimizes the same squared error as the
  official MSE, and the deterministic action is that mean. The official 10% holdout with
  early stopping after epoch 80 is not done: the trainer runs ``--steps`` updates.
  Weight decay is the official coupled L2 (``torch.optim.Adam(weight_decay=0.1)``: ``0.1 * theta``
  added to the gradient before Adam).
* **Rollout budget**: at most ``rollout_rounds`` = 100 rounds of ``rollout_batch`` (official 1000, a
  cap it rarely reaches); the rollout buffer has room for exactly ``rollout_trajectories``, so the
  valid rollouts of the last round beyond it are dropped (the official code keeps the whole last
  round). If **no** rollout passes the filter, the official code fails (``max`` of an empty list);
  here the ``rollout_trajectories`` best rollouts of the last round are kept instead and the
  metric ``rollout_fallback`` is 1, so a run says it did not stitch rather than stopping.
* **Horizon and termination**: ``rollout_horizon`` defaults to the data's longest episode (200
  on the point maze, the official ``horizon``); rollouts never terminate (the point maze's
  termination function). On data with terminal states (locomotion falls) the model rollouts run
  on past them: MBRCSL as published is for fixed-horizon tasks.
* **Data mixing**: ``data_ratio`` (default 0, the official point-maze setting) is the fraction of
  each RCSL batch drawn from the data with its own returns-to-go.

How it maps onto the contract (``docs/architecture.md`` section 2): ``pretrain_update`` trains
the two models and, at its last step (``pretrain_step == pretrain_steps - 1``), generates the
rollouts with a ``lax.while_loop`` of rounds inside the same jitted step (a ``lax.cond``), so the
kept rollouts, their count and the goal are **part of the train state**: the ``step_0``
checkpoint written after pretraining and every later one hold them, and a resumed run trains on
the very same rollouts. ``update`` is one RCSL step on a batch drawn from the kept rollouts.
The sampler is RvS-R's one-step trajectory windows plus the data's start observations and the
holdout flag. The policy's carry is RvS-R's (the remaining target, reduced by each
reward, and the step count); ``act`` conditions on ``g = G - rewards so far``, ``G`` the configured
``target_return`` or else the saved policy's ``goal`` (the best kept rollout return), in which case
the carry's ``return_to_go`` is kept relative to ``goal`` (it starts at 0; see
:meth:`MBRCSL.initial_carry`).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=2, action_dim=1, return_max=10.0,
    ...                    reward_abs_mean=1.0, max_episode_length=5)
    >>> algo = MBRCSL(MBRCSLConfig(hidden_dims=(8,), dynamics_hidden_dims=(8,),
    ...               dynamics_weight_decay=(0.0, 0.0), behavior_hidden_dims=(8,)))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> state["rollouts"]["observations"].shape   # N_traj x H x obs_dim, filled in pretraining
    (100, 5, 2)
    >>> carry = algo.initial_carry(2)
    >>> _, carry = algo.act(algo.policy_params(state), jnp.zeros((2, 2)), carry)
    >>> algo.observe_reward(carry, jnp.array([1.0, 2.0]))["return_to_go"].tolist()  # G - r
    [-1.0, -2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.algos.base import Carry, DatasetSpec, register
from policyfit.algos.losses import gradient_step, supervised_actor_step
from policyfit.algos.propensity import box_action_log_prob
from policyfit.algos.rvs import RvSR, RvSRConfig
from policyfit.data.sampler import TrajectorySampler
from policyfit.errors import ConfigError
from policyfit.nn.modules import LOG_STD_MAX, LOG_STD_MIN, MLP, Normal
from policyfit.nn.normalization import (
    from_unit_actions,
    normalize_observations,
    to_unit_actions,
)

HOLDOUT_DECAY = 0.99  # the running holdout error that ranks the members: per-step decay
HOLDOUT_SEED = 0  # which transitions are held out (fixed: the same split on every run)


@dataclass(frozen=True)
class MBRCSLConfig(RvSRConfig):
    # defaults: examples/pointmaze/run_mbrcsl_maze.py (argument names in the comments)
    hidden_dims: tuple[int, ...] = (1024, 1024)  # RCSL MLP (rcsl_hidden_dims)
    learning_rate: float = 5e-5  # RCSL Adam step (rcsl_lr)
    weight_decay: float = 0.1  # RCSL coupled L2, torch Adam's weight_decay (rcsl_weight_decay)
    batch_size: int = 256  # RCSL and pretraining batch (rcsl_batch; the ensemble's is 256 too)
    # G at evaluation; None = the best kept rollout return (the official goal)
    target_return: float | None = None
    update_target: bool = True  # subtract each reward from G (the official evaluation; only True)
    data_ratio: float = 0.0  # fraction of each RCSL batch from the data (official maze: 0)
    dynamics_ensemble: int = 7  # ensemble members (n-ensemble)
    dynamics_elites: int = 5  # members used in rollouts, lowest holdout error (n-elites)
    dynamics_hidden_dims: tuple[int, ...] = (200, 200, 200, 200)  # Swish MLP per member
    # per-layer weight decay, hidden layers then output (dynamics_weight_decay)
    dynamics_weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    dynamics_lr: float = 1e-3  # ensemble Adam step (dynamics_lr)
    logvar_loss_coef: float = 0.01  # weight of the log-variance bounds (ensemble_dynamics.py)
    dynamics_holdout: float = 0.1  # transitions no member trains on (official 20%, <= 1,000)
    behavior_hidden_dims: tuple[int, ...] = (256, 256)  # behaviour policy MLP
    behavior_components: int = 5  # Gaussians in the behaviour mixture (1: Gaussian BC)
    behavior_lr: float = 1e-3  # behaviour Adam step (official diffusion: 1e-4 AdamW)
    pretrain_steps: int = 20_000  # steps training both models, CPU-scaled (official: epochs)
    rollout_batch: int = 200  # rollouts per round (rollout-batch)
    rollout_horizon: int | None = None  # H; None: the data's longest episode (maze: 200)
    rollout_trajectories: int = 100  # rollouts to keep (num_need_traj)
    rollout_rounds: int = 100  # most rounds of rollout_batch (rollout_epoch: 1000)


# ---------------------------------------------------------------------------------- networks
def soft_clamp(x: jnp.ndarray, low: jnp.ndarray, high: jnp.ndarray) -> jnp.ndarray:
    """Clamp between ``low`` and ``high`` keeping a gradient (official ``soft_clamp``)."""
    x = high - jax.nn.softplus(high - x)
    return low + jax.nn.softplus(x - low)


class _GaussianMember(nn.Module):
    """One ensemble member: Swish MLP -> mean and raw log-variance of ``[delta s, r]``."""

    out_dim: int
    hidden_dims: Sequence[int]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        # ensemble_linear.py: trunc_normal(std = 1 / (2 sqrt(fan_in)))
        init = nn.initializers.variance_scaling(0.25, "fan_in", "truncated_normal")
        for i, size in enumerate(self.hidden_dims):
            x = nn.swish(nn.Dense(size, kernel_init=init, name=f"layer_{i}")(x))
        out = nn.Dense(2 * self.out_dim, kernel_init=init, name=f"layer_{len(self.hidden_dims)}")
        mean, logvar = jnp.split(out(x), 2, axis=-1)
        return mean, logvar


class GaussianEnsemble(nn.Module):
    """``n_members`` Gaussian dynamics models in one call: mean, log-variance ``[E, B, D]``.

    The log-variance is soft-clamped between the learned bounds ``min_logvar`` / ``max_logvar``
    (shared by the members, as in ``EnsembleDynamicsModel``).
    """

    out_dim: int
    hidden_dims: Sequence[int] = (200, 200, 200, 200)
    n_members: int = 7

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        members = nn.vmap(
            _GaussianMember,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_members,
        )(self.out_dim, tuple(self.hidden_dims), name="members")
        mean, logvar = members(x)
        high = self.param("max_logvar", nn.initializers.constant(0.5), (self.out_dim,))
        low = self.param("min_logvar", nn.initializers.constant(-10.0), (self.out_dim,))
        return mean, soft_clamp(logvar, low, high)


class MixtureBehavior(nn.Module):
    """``mu(a | s)``: a mixture of ``components`` diagonal Gaussians (logits, means, log-stds)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    components: int = 5

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        x = MLP(tuple(self.hidden_dims), activate_final=True)(obs)
        k, a = self.components, self.action_dim
        logits = nn.Dense(k)(x)
        means = jnp.tanh(nn.Dense(k * a)(x)).reshape(*x.shape[:-1], k, a)
        log_stds = nn.Dense(k * a)(x).reshape(*x.shape[:-1], k, a)
        return logits, means, jnp.clip(log_stds, LOG_STD_MIN, LOG_STD_MAX)


def mixture_log_prob(logits, means, log_stds, actions) -> jnp.ndarray:
    """``log sum_k softmax(logits)_k N(a; m_k, s_k)`` ``[B]``."""
    per_component = Normal(means, log_stds).log_prob(actions[..., None, :])
    return jax.nn.logsumexp(jax.nn.log_softmax(logits) + per_component, axis=-1)


def mixture_sample(logits, means, log_stds, key) -> jnp.ndarray:
    """A component per row, then a Gaussian sample from it, clipped to [-1, 1]."""
    k_pick, k_noise = jax.random.split(key)
    pick = jax.random.categorical(k_pick, logits)[..., None, None]
    mean = jnp.take_along_axis(means, pick, axis=-2)[..., 0, :]
    log_std = jnp.take_along_axis(log_stds, pick, axis=-2)[..., 0, :]
    return jnp.clip(Normal(mean, log_std).sample(k_noise), -1.0, 1.0)


# ---------------------------------------------------------------------------------- losses
def ensemble_gaussian_nll(
    mean: jnp.ndarray, logvar: jnp.ndarray, target: jnp.ndarray, weights: jnp.ndarray
) -> jnp.ndarray:
    """Per member ``[E]``: the weighted mean over the batch of the mean over dimensions of
    ``(mu - y)^2 exp(-logvar) + logvar`` (``ensemble_dynamics.py::learn``; constants dropped).

    ``mean``, ``logvar`` ``[E, B, D]``; ``target`` ``[B, D]``; ``weights`` ``[E, B]`` (bootstrap
    counts times the training mask).
    """
    per_sample = jnp.mean((mean - target) ** 2 * jnp.exp(-logvar) + logvar, axis=-1)
    return jnp.sum(weights * per_sample, axis=-1) / jnp.maximum(jnp.sum(weights, axis=-1), 1e-8)


def weight_decay_loss(params: dict, decays: Sequence[float]) -> jnp.ndarray:
    """``sum_l wd_l * 0.5 * ||W_l||^2`` over the members' layers (kernels only, as the official)."""
    layers = params["params"]["members"]
    return sum(
        decay * 0.5 * jnp.sum(layers[f"layer_{i}"]["kernel"] ** 2) for i, decay in enumerate(decays)
    )


# ---------------------------------------------------------------------------------- the filter
def return_filter(
    buffer: dict, count: jnp.ndarray, rollouts: dict, threshold: float
) -> tuple[dict, jnp.ndarray]:
    """Append the rollouts whose ``returns`` exceed ``threshold`` to ``buffer`` (in order, after its
    first ``count`` rows); those that do not fit are dropped. Returns ``(buffer, new count)``.

    ``buffer`` and ``rollouts`` are dicts of arrays with a leading trajectory axis and the same
    keys, one of them ``returns``. Pure and jit-able.
    """
    capacity = buffer["returns"].shape[0]
    keep = rollouts["returns"] > threshold
    slot = count + jnp.cumsum(keep) - 1
    slot = jnp.where(keep & (slot < capacity), slot, capacity)  # out of range: dropped
    buffer = {k: v.at[slot].set(rollouts[k], mode="drop") for k, v in buffer.items()}
    return buffer, jnp.minimum(count + jnp.sum(keep), capacity)


def keep_best(buffer: dict, rollouts: dict) -> tuple[dict, jnp.ndarray]:
    """The fallback when nothing passed the filter: the highest-return rollouts fill the buffer."""
    capacity, n = buffer["returns"].shape[0], rollouts["returns"].shape[0]
    m = min(capacity, n)
    order = jnp.argsort(-rollouts["returns"])[:m]
    buffer = {k: v.at[:m].set(rollouts[k][order]) for k, v in buffer.items()}
    return buffer, jnp.asarray(m, jnp.int32)


def returns_to_go(rewards: jnp.ndarray) -> jnp.ndarray:
    """``rtg_t = sum_{t' >= t} r_t'`` along the last axis (``rollout_simple``'s ``rtgs``)."""
    return jnp.flip(jnp.cumsum(jnp.flip(rewards, -1), -1), -1)


# ---------------------------------------------------------------------------------- sampler
class MBRCSLSampler(TrajectorySampler):
    """RvS-R's one-step windows plus ``start_observations`` (every episode's first observation,
    where rollouts start) and ``holdout`` (1 for the transitions no ensemble member trains on)."""

    def __init__(self, ds, holdout: float, device=None):
        super().__init__(ds, length=1, discount=1.0, device=device)
        rng = np.random.default_rng(HOLDOUT_SEED)
        flags = (rng.random(len(ds)) < holdout).astype(np.float32)
        starts = np.asarray(ds.observations[ds.episode_starts], np.float32)
        self.data = {
            **self.data,
            "holdout": jax.device_put(jnp.asarray(flags), device),
            "start_observations": jax.device_put(jnp.asarray(starts), device),
        }

    def sample(self, data: dict, key: jax.Array, batch_size: int) -> dict:
        windows = {k: v for k, v in data.items() if k != "start_observations"}
        batch = super().sample(windows, key, batch_size)
        batch["start_observations"] = data["start_observations"]
        return batch


# ---------------------------------------------------------------------------------- algorithm
@register("mbrcsl")
class MBRCSL(RvSR):
    """MBRCSL: dynamics ensemble + behaviour policy -> filtered rollouts -> RCSL (module docstring)."""

    Config = MBRCSLConfig
    policy_keys = ("actor", "obs_norm", "action_scale", "goal")

    def setup(self, spec: DatasetSpec) -> None:
        super().setup(spec)
        c = self.config
        checks = [
            (c.dynamics_elites >= 1, "dynamics_elites", "must be >= 1"),
            (
                c.dynamics_elites <= c.dynamics_ensemble,
                "dynamics_elites",
                f"must be <= dynamics_ensemble ({c.dynamics_ensemble})",
            ),
            (
                len(c.dynamics_weight_decay) == len(c.dynamics_hidden_dims) + 1,
                "dynamics_weight_decay",
                f"needs one value per layer: {len(c.dynamics_hidden_dims) + 1} for "
                f"dynamics_hidden_dims={c.dynamics_hidden_dims}",
            ),
            (c.behavior_components >= 1, "behavior_components", "must be >= 1"),
            (c.pretrain_steps >= 1, "pretrain_steps", "must be >= 1 (the rollouts are made there)"),
            (c.rollout_batch >= 1, "rollout_batch", "must be >= 1"),
            (c.rollout_trajectories >= 1, "rollout_trajectories", "must be >= 1"),
            (c.rollout_rounds >= 1, "rollout_rounds", "must be >= 1"),
            (
                c.rollout_horizon is None or c.rollout_horizon >= 1,
                "rollout_horizon",
                "must be >= 1 or none",
            ),
            (0.0 <= c.data_ratio <= 1.0, "data_ratio", "must be in [0, 1]"),
            (0.0 <= c.dynamics_holdout < 1.0, "dynamics_holdout", "must be in [0, 1)"),
            (
                c.update_target,
                "update_target",
                "MBRCSL conditions on the remaining return (set it true)",
            ),
        ]
        for ok, field, message in checks:
            if not ok:
                raise ConfigError(message, path=self.name, field=field)
        self.optimizer = optax.chain(
            optax.add_decayed_weights(c.weight_decay), optax.adam(c.learning_rate)
        )
        self.dynamics = GaussianEnsemble(
            spec.observation_dim + 1, tuple(c.dynamics_hidden_dims), c.dynamics_ensemble
        )
        self.dynamics_optimizer = optax.adam(c.dynamics_lr)
        self.behavior = MixtureBehavior(
            spec.action_dim, tuple(c.behavior_hidden_dims), c.behavior_components
        )
        self.behavior_optimizer = optax.adam(c.behavior_lr)
        self.rollout_horizon = c.rollout_horizon or spec.max_episode_length
        # the return filter's threshold: the best episode return in the data
        self.threshold = float(spec.return_max)
        self.omega_scale = abs(spec.return_max) if spec.return_max != 0 else 1.0

    @property
    def pretrain_steps(self) -> int:
        return self.config.pretrain_steps

    def make_sampler(self, dataset, spec: DatasetSpec) -> MBRCSLSampler:
        return MBRCSLSampler(dataset, self.config.dynamics_holdout)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        state = super().init(spec, key)  # RvS-R's actor, optimizer, statistics (calls setup)
        c = self.config
        k_dyn, k_beh = jax.random.split(jax.random.fold_in(key, 1))
        od, ad = spec.observation_dim, spec.action_dim
        dyn = self.dynamics.init(k_dyn, jnp.zeros((1, od + ad)))
        beh = self.behavior.init(k_beh, jnp.zeros((1, od)))
        n, h = c.rollout_trajectories, self.rollout_horizon
        return {
            **state,
            "dynamics": dyn,
            "dynamics_opt": self.dynamics_optimizer.init(dyn),
            "behavior": beh,
            "behavior_opt": self.behavior_optimizer.init(beh),
            "holdout_error": jnp.zeros((c.dynamics_ensemble,), jnp.float32),
            "holdout_weight": jnp.zeros((), jnp.float32),
            "pretrain_step": jnp.zeros((), jnp.int32),
            "rollouts": {
                "observations": jnp.zeros((n, h, od), jnp.float32),
                "actions": jnp.zeros((n, h, ad), jnp.float32),
                "returns_to_go": jnp.zeros((n, h), jnp.float32),
                "returns": jnp.zeros((n,), jnp.float32),
            },
            "rollout_count": jnp.zeros((), jnp.int32),
            "rollout_rounds": jnp.zeros((), jnp.int32),
            "rollout_fallback": jnp.zeros((), jnp.int32),
            "elites": jnp.arange(c.dynamics_elites, dtype=jnp.int32),
            "goal": jnp.asarray(spec.return_max, jnp.float32),
        }

    # ------------------------------------------------------------------ phase 1: the models
    def dynamics_inputs(self, obs, unit_actions, obs_norm) -> jnp.ndarray:
        return jnp.concatenate([normalize_observations(obs, obs_norm), unit_actions], axis=-1)

    def dynamics_loss(self, params, inputs, targets, weights):
        """Sum over members of the Gaussian NLL, plus weight decay and the log-variance bounds."""
        mean, logvar = self.dynamics.apply(params, inputs)
        nll = jnp.sum(ensemble_gaussian_nll(mean, logvar, targets, weights))
        bounds = params["params"]["max_logvar"].sum() - params["params"]["min_logvar"].sum()
        decay = weight_decay_loss(params, self.config.dynamics_weight_decay)
        return nll + decay + self.config.logvar_loss_coef * bounds, nll

    def behavior_loss(self, params, obs, unit_actions):
        return -jnp.mean(mixture_log_prob(*self.behavior.apply(params, obs), unit_actions))

    def pretrain_update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        c = self.config
        k_boot, k_roll = jax.random.split(key)
        first = {k: v[:, 0] for k, v in batch.items() if k != "start_observations"}
        obs, nxt = first["observations"], first["next_observations"]
        unit = to_unit_actions(first["actions"], state["action_scale"])
        inputs = self.dynamics_inputs(obs, unit, state["obs_norm"])
        targets = jnp.concatenate([nxt - obs, first["rewards"][:, None]], axis=-1)
        held = first["holdout"]
        boot = jax.random.poisson(k_boot, 1.0, (c.dynamics_ensemble, obs.shape[0]))
        weights = boot.astype(jnp.float32) * (1.0 - held)[None]
        (_, nll), grads = jax.value_and_grad(self.dynamics_loss, has_aux=True)(
            state["dynamics"], inputs, targets, weights
        )
        dyn, dyn_opt = gradient_step(
            self.dynamics_optimizer, state["dynamics"], state["dynamics_opt"], grads
        )
        # holdout: squared error of each member's mean (ensemble_dynamics.py::validate)
        mean, _ = self.dynamics.apply(dyn, inputs)
        err = jnp.sum(jnp.mean((mean - targets) ** 2, axis=-1) * held[None], axis=-1)
        error = HOLDOUT_DECAY * state["holdout_error"] + err
        weight = HOLDOUT_DECAY * state["holdout_weight"] + jnp.sum(held)
        beh_obs = normalize_observations(obs, state["obs_norm"])
        beh_loss, beh_grads = jax.value_and_grad(self.behavior_loss)(
            state["behavior"], beh_obs, unit
        )
        beh, beh_opt = gradient_step(
            self.behavior_optimizer, state["behavior"], state["behavior_opt"], beh_grads
        )
        state = {
            **state,
            "dynamics": dyn,
            "dynamics_opt": dyn_opt,
            "behavior": beh,
            "behavior_opt": beh_opt,
            "holdout_error": error,
            "holdout_weight": weight,
            "pretrain_step": state["pretrain_step"] + 1,
        }
        last = state["pretrain_step"] == c.pretrain_steps
        starts = batch["start_observations"]
        state = jax.lax.cond(
            last, lambda s: self.make_rollouts(s, starts, k_roll), lambda s: s, state
        )
        holdout_mse = error / jnp.maximum(weight, 1e-8)
        return state, {
            "dynamics_nll": nll,
            "dynamics_holdout_mse": jnp.mean(jnp.sort(holdout_mse)[: c.dynamics_elites]),
            "behavior_nll": beh_loss,
        }

    # ------------------------------------------------------------------ phase 2: rollouts
    def model_step(self, state: dict, obs: jnp.ndarray, key: jax.Array):
        """One imagined step for a batch: ``a ~ mu(s)``, a random elite, ``(s', r)`` sampled."""
        k_act, k_member, k_noise = jax.random.split(key, 3)
        norm = state["obs_norm"]
        head = self.behavior.apply(state["behavior"], normalize_observations(obs, norm))
        unit = mixture_sample(*head, k_act)
        mean, logvar = self.dynamics.apply(state["dynamics"], self.dynamics_inputs(obs, unit, norm))
        sample = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_noise, mean.shape)
        elites = state["elites"]
        member = elites[jax.random.randint(k_member, (obs.shape[0],), 0, elites.shape[0])]
        chosen = sample[member, jnp.arange(obs.shape[0])]
        actions = from_unit_actions(unit, state["action_scale"])
        return obs + chosen[:, :-1], (obs, actions, chosen[:, -1])

    def rollout_round(self, state: dict, starts: jnp.ndarray, key: jax.Array) -> dict:
        """``rollout_batch`` model rollouts of ``H`` steps from random start observations."""
        c, h = self.config, self.rollout_horizon
        k_start, k_steps = jax.random.split(key)
        idx = jax.random.randint(k_start, (c.rollout_batch,), 0, starts.shape[0])

        def step(obs, k):
            return self.model_step(state, obs, k)

        _, (obs, actions, rewards) = jax.lax.scan(step, starts[idx], jax.random.split(k_steps, h))
        rewards = rewards.T  # [B, H]
        return {
            "observations": jnp.swapaxes(obs, 0, 1),
            "actions": jnp.swapaxes(actions, 0, 1),
            "returns_to_go": returns_to_go(rewards),
            "returns": jnp.sum(rewards, axis=-1),
        }

    def make_rollouts(self, state: dict, starts: jnp.ndarray, key: jax.Array) -> dict:
        """Rounds of rollouts through the return filter until ``rollout_trajectories`` are kept
        or ``rollout_rounds`` are done; the fallback if none passed; the goal and the elites."""
        c = self.config
        holdout_mse = state["holdout_error"] / jnp.maximum(state["holdout_weight"], 1e-8)
        elites = jnp.argsort(holdout_mse)[: c.dynamics_elites].astype(jnp.int32)
        state = {**state, "elites": elites}
        shapes = jax.eval_shape(lambda: self.rollout_round(state, starts, key))
        empty = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        def more(carry):
            _, count, rounds, _ = carry
            return (count < c.rollout_trajectories) & (rounds < c.rollout_rounds)

        def one_round(carry):
            buffer, count, rounds, _ = carry
            fresh = self.rollout_round(state, starts, jax.random.fold_in(key, rounds))
            buffer, count = return_filter(buffer, count, fresh, self.threshold)
            return buffer, count, rounds + 1, fresh

        start = (state["rollouts"], jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), empty)
        buffer, count, rounds, last = jax.lax.while_loop(more, one_round, start)
        fallback = count == 0
        buffer, count = jax.lax.cond(
            fallback, lambda: keep_best(buffer, last), lambda: (buffer, count)
        )
        kept = jnp.arange(c.rollout_trajectories) < count
        goal = jnp.max(jnp.where(kept, buffer["returns"], -jnp.inf))
        return {
            **state,
            "rollouts": buffer,
            "rollout_count": count,
            "rollout_rounds": rounds,
            "rollout_fallback": fallback.astype(jnp.int32),
            "goal": goal,
        }

    # ------------------------------------------------------------------ phase 3: RCSL
    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        c = self.config
        n = batch["observations"].shape[0]
        k_traj, k_time = jax.random.split(key)
        traj = jax.random.randint(k_traj, (n,), 0, jnp.maximum(state["rollout_count"], 1))
        t = jax.random.randint(k_time, (n,), 0, self.rollout_horizon)
        roll = state["rollouts"]
        obs = roll["observations"][traj, t]
        actions = roll["actions"][traj, t]
        rtg = roll["returns_to_go"][traj, t]
        n_data = int(round(c.data_ratio * n))
        if n_data:
            first = {k: v[:n_data, 0] for k, v in batch.items() if k != "start_observations"}
            obs = obs.at[:n_data].set(first["observations"])
            actions = actions.at[:n_data].set(first["actions"])
            rtg = rtg.at[:n_data].set(first["returns_to_go"])
        inputs = self.policy_input(obs, rtg, state["obs_norm"])
        unit = to_unit_actions(actions, state["action_scale"])
        new_state, loss, _ = supervised_actor_step(self.optimizer, state, self.loss, inputs, unit)
        return new_state, {
            "actor_loss": loss,
            "rtg_mean": jnp.mean(rtg),
            "rollouts_kept": state["rollout_count"].astype(jnp.float32),
            "rollout_rounds": state["rollout_rounds"].astype(jnp.float32),
            "rollout_fallback": state["rollout_fallback"].astype(jnp.float32),
            "goal": state["goal"],
        }

    # ------------------------------------------------------------------ acting with a carry
    def initial_carry(self, batch_size: int) -> Carry:
        """RvS-R's carry: the remaining target and the step count. The remaining target is kept
        *relative to the saved goal* when no ``target_return`` is configured (it starts at 0):
        the goal is a learned value in the policy's parameters, which this method cannot see."""
        start = self.config.target_return or 0.0
        return {
            "return_to_go": jnp.full((batch_size,), start, jnp.float32),
            "timestep": jnp.zeros((batch_size,), jnp.int32),
        }

    def conditioning(self, params: dict, carry: Carry) -> jnp.ndarray:
        """``g``: the carry's remaining target, plus the saved goal when none was configured."""
        if self.config.target_return is None:
            return carry["return_to_go"] + params["goal"]
        return carry["return_to_go"]

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        inputs = self.policy_input(obs, self.conditioning(params, carry), params["obs_norm"])
        dist = self.actor.apply(params["actor"], inputs)
        out = dist.mode() if key is None else jnp.clip(dist.sample(key), -1.0, 1.0)
        carry = {**carry, "timestep": carry["timestep"] + 1}
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        inputs = self.policy_input(obs, self.conditioning(params, carry), params["obs_norm"])
        dist = self.actor.apply(params["actor"], inputs)
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)
