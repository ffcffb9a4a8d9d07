"""RvS-R and RvS-G: supervised learning conditioned on the average reward-to-go, or on a goal.

RvS-R (``rvs_r``) is described here; RvS-G (``rvs_g``, goal-conditioned, hindsight goals) in
:class:`RvSG`.

Emmons, Eysenbach, Kostrikov & Levine (ICLR 2022), "RvS: What is Essential for Offline RL via
Supervised Learning?". A plain MLP policy ``pi(a | s, omega)`` is fitted by maximum likelihood,

    L(theta) = -E_(s_t, a_t)~D [ log pi_theta(a_t | s_t, omega_t) ],
    omega_t  = (sum_{t' >= t} r_t') / (H - t),

where ``omega_t`` is the *average* reward over the rest of the episode and ``H`` the longest episode
in the data (checked against ``src/rvs/dataset.py::reward_to_go`` of github.com/scottemmons/rvs:
the sum restarts at every terminal or timeout, the divisor is ``H_max - t``). At test time the
policy is told what to achieve: a target return ``G`` (``--set target_return=``, default the best
episode return in the data). ``omega`` is then computed from the policy's *carry*, the remaining
target and the step count, ``omega_t = (G - sum of rewards so far) / (H - t)``: each observed reward
is subtracted (:meth:`RvSR.observe_reward`), as return-conditioned policies do at evaluation. The
official evaluation instead keeps ``omega = G / H`` for the whole episode; ``update_target=False``
does that. (The two agree while the agent earns the average it was asked for.)

Hyperparameters are the paper's Gym setting (``experiments/config/d4rl/gym_rvs_r.cfg``): MLP
2x1024 ReLU, Adam 1e-3, Gaussian policy with a state-independent log-std. The paper's batch of
16384 for 2000 epochs is GPU-scale; policyfit keeps the library default of 256 (``--set
batch_size=16384`` restores it). ``omega`` enters the network divided by the data's mean
``|r|`` so it is of order 1 whatever the reward scale.

Batches come from the trajectory sampler (windows of one step), which supplies the per-episode
return-to-go and timestep that ``omega`` is built from.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=3, action_dim=1, return_max=100.0,
    ...                    reward_abs_mean=1.0, max_episode_length=100)
    >>> algo = RvSR(RvSRConfig(hidden_dims=(8,), target_return=50.0))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> carry = algo.initial_carry(2)
    >>> float(carry["return_to_go"][0]), int(carry["timestep"][0])
    (50.0, 0)
    >>> action, carry = algo.act(algo.policy_params(state), jnp.zeros((2, 3)), carry)
    >>> carry = algo.observe_reward(carry, jnp.array([1.0, 2.0]))
    >>> carry["return_to_go"].tolist(), carry["timestep"].tolist()
    ([49.0, 48.0], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import supervised_actor_step
from policyfit.algos.propensity import box_action_log_prob
from policyfit.data.sampler import TrajectorySampler
from policyfit.errors import ConfigError
from policyfit.nn import GaussianPolicy
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    observation_stats,
    stats_from_spec,
    to_unit_actions,
)


@dataclass(frozen=True)
class RvSRConfig(AlgoConfig):
    hidden_dims: tuple[int, ...] = (1024, 1024)  # paper: 2 x 1024 ReLU
    learning_rate: float = 1e-3  # paper: Adam 1e-3, constant
    # G: the return asked of the policy at evaluation; None = the best episode return in the data
    target_return: float | None = None
    # True: omega = (G - rewards so far) / (H - t), updated every step; False: omega = G / H fixed
    # for the episode (the official evaluation)
    update_target: bool = True
    normalize_observations: bool = True


@register("rvs_r")
class RvSR(Algorithm):
    """RvS-R: an MLP policy conditioned on the average reward-to-go (see the module docstring)."""

    Config = RvSRConfig

    def setup(self, spec: DatasetSpec) -> None:
        if spec.max_episode_length < 1:
            raise ConfigError("the data has no episodes", path=self.name, field="dataset")
        super().setup(spec)
        self.actor = GaussianPolicy(spec.action_dim, self.config.hidden_dims)
        self.optimizer = optax.adam(self.config.learning_rate)
        self.horizon = float(spec.max_episode_length)  # H in omega = rtg / (H - t)
        self.omega_scale = spec.reward_abs_mean if spec.reward_abs_mean > 0 else 1.0

    @property
    def target_return(self) -> float:
        """G: the configured target, else the best episode return in the training data."""
        if self.config.target_return is not None:
            return float(self.config.target_return)
        return float(self.spec.return_max)

    def make_sampler(self, dataset, spec: DatasetSpec) -> TrajectorySampler:
        """One-step windows: each carries its undiscounted return-to-go and timestep."""
        return TrajectorySampler(dataset, length=1, discount=1.0)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        actor = self.actor.init(key, jnp.zeros((1, spec.observation_dim + 1)))
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def omega(self, returns_to_go: jnp.ndarray, timesteps: jnp.ndarray) -> jnp.ndarray:
        """The average reward-to-go ``rtg / (H - t)`` (``H - t >= 1`` inside the data)."""
        return returns_to_go / jnp.maximum(self.horizon - timesteps, 1.0)

    def policy_input(self, obs: jnp.ndarray, omega: jnp.ndarray, obs_norm: dict) -> jnp.ndarray:
        """``[normalized s, omega / mean|r|]``."""
        norm = normalize_observations(obs, obs_norm)
        return jnp.concatenate([norm, (omega / self.omega_scale)[:, None]], axis=-1)

    def loss(self, actor_params, inputs, actions):
        """Negative log-likelihood of the logged actions."""
        return -jnp.mean(self.actor.apply(actor_params, inputs).log_prob(actions))

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        first = {k: v[:, 0] for k, v in batch.items()}  # windows of length 1
        omega = self.omega(first["returns_to_go"], first["timesteps"].astype(jnp.float32))
        inputs = self.policy_input(first["observations"], omega, state["obs_norm"])
        actions = to_unit_actions(first["actions"], state["action_scale"])
        new_state, loss, _ = supervised_actor_step(
            self.optimizer, state, self.loss, inputs, actions
        )
        return new_state, {"actor_loss": loss, "omega_mean": jnp.mean(omega)}

    # ------------------------------------------------------------------ acting with a carry
    def initial_carry(self, batch_size: int) -> Carry:
        """The remaining return target ``G`` and the step count ``t = 0`` of each episode."""
        return {
            "return_to_go": jnp.full((batch_size,), self.target_return, jnp.float32),
            "timestep": jnp.zeros((batch_size,), jnp.int32),
        }

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        t = carry["timestep"].astype(jnp.float32)
        if self.config.update_target:
            omega = self.omega(carry["return_to_go"], t)
        else:
            omega = carry["return_to_go"] / self.horizon
        dist = self.actor.apply(params["actor"], self.policy_input(obs, omega, params["obs_norm"]))
        out = dist.mode() if key is None else jnp.clip(dist.sample(key), -1.0, 1.0)
        carry = {"return_to_go": carry["return_to_go"], "timestep": carry["timestep"] + 1}
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The Gaussian policy's log-density given the carry ``act`` saw (atoms on the bounds)."""
        t = carry["timestep"].astype(jnp.float32)
        if self.config.update_target:
            omega = self.omega(carry["return_to_go"], t)
        else:
            omega = carry["return_to_go"] / self.horizon
        dist = self.actor.apply(params["actor"], self.policy_input(obs, omega, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)

    def observe_reward(self, carry: Carry, reward: jnp.ndarray) -> Carry:
        """Subtract the reward just earned from the remaining target (``update_target``)."""
        if not self.config.update_target:
            return carry
        return {**carry, "return_to_go": carry["return_to_go"] - reward}


# ====================================================================================== RvS-G
GOAL_ARRAY = "achieved_goal"  # the per-transition extra array a goal is relabelled from


def goal_dims_of(ds: Any, configured: tuple[int, ...] | None = None) -> tuple[int, int]:
    """``[start, stop)``: where the goal sits inside the flat observation.

    ``configured`` (RvS-G's ``goal_dims``) when given; else the maze builder's record
    ``metadata["goal_observation"]["flattened"]["desired_goal"]``; else the last two dimensions.

    Example:
        >>> from policyfit.data import Dataset
        >>> ds = Dataset(observations=np.zeros((2, 6)), actions=np.zeros((2, 2)),
        ...              rewards=np.zeros(2), terminals=np.array([0, 1]))
        >>> goal_dims_of(ds), goal_dims_of(ds, (0, 2))
        ((4, 6), (0, 2))
    """
    if configured is not None:
        dims = tuple(configured)
    else:
        flat = (ds.metadata.get("goal_observation") or {}).get("flattened") or {}
        dims = tuple(flat.get("desired_goal") or (ds.observation_dim - 2, ds.observation_dim))
    return check_goal_dims(dims, ds.observation_dim, path=str(ds.source))


def check_goal_dims(dims: tuple[int, ...], observation_dim: int, path: str) -> tuple[int, int]:
    """``dims`` as ``(start, stop)`` with ``0 <= start < stop <= observation_dim``, else a
    ConfigError."""
    ok = len(dims) == 2 and 0 <= int(dims[0]) < int(dims[1]) <= observation_dim
    if not ok:
        raise ConfigError(
            f"goal_dims must be START,STOP (the goal is observation[START:STOP]) with "
            f"0 <= START < STOP <= {observation_dim} (the observation size), got "
            f"{','.join(str(d) for d in dims)}",
            path=path,
            field="goal_dims",
        )
    return int(dims[0]), int(dims[1])


def achieved_goals(ds: Any, width: int) -> np.ndarray:
    """``[N, width]`` float32: the goal each step's observation achieves (the extra array
    :data:`GOAL_ARRAY`), checked to be as wide as the goal slice."""
    extra = ds.metadata.get("extra_arrays") or {}
    if GOAL_ARRAY not in extra:
        raise ConfigError(
            f"rvs_g relabels goals with the {GOAL_ARRAY} of later steps, but the dataset has "
            f"no {GOAL_ARRAY} extra array; use a goal dataset (e.g. pointmaze-umaze, whose "
            f"readers keep Minari's {GOAL_ARRAY}) or add metadata['extra_arrays']"
            f"['{GOAL_ARRAY}'] with one goal per step",
            path=str(ds.source),
            field=f"extra_arrays.{GOAL_ARRAY}",
        )
    goals = np.asarray(extra[GOAL_ARRAY], np.float32).reshape(len(ds), -1)
    if goals.shape[1] != width:
        raise ConfigError(
            f"the {GOAL_ARRAY} array has {goals.shape[1]} numbers per step but the goal slice of "
            f"the observation has {width}; set goal_dims=START,STOP to the desired goal's place",
            path=str(ds.source),
            field="goal_dims",
        )
    return goals


class HindsightGoalSampler:
    """Batches ``(s_t, a_t)`` whose goal slice holds the achieved goal of a step ``t_g >= t`` of
    the same episode, drawn as the official RvS-G (see :class:`RvSG`): an episode uniformly (not in
    proportion to its length), then ``t1 ~ U{0..L-2}``, ``t2 ~ U{0..L-1}`` (``L`` its length;
    ``t1 = 0`` when ``L = 1``), ``t = min(t1, t2)`` and ``t_g = max(t1, t2)``.

    ``sample`` returns ``observations`` (goal slice replaced), ``actions``, ``goals`` and the
    dataset rows ``start_index`` (``t``) and ``goal_index`` (``t_g``).

    Example:
        >>> from policyfit.data import Dataset
        >>> ds = Dataset(observations=np.arange(12.0).reshape(4, 3), actions=np.zeros((4, 1)),
        ...              rewards=np.zeros(4), terminals=np.array([0, 0, 0, 1]),
        ...              metadata={"extra_arrays": {"achieved_goal": 10 + np.arange(4.0)}})
        >>> sampler = HindsightGoalSampler(ds, (2, 3))
        >>> batch = sampler.sample(sampler.data, jax.random.PRNGKey(0), 64)
        >>> bool(jnp.all(batch["goal_index"] >= batch["start_index"]))
        True
        >>> bool(jnp.all(batch["observations"][:, 2] == 10 + batch["goal_index"]))
        True
    """

    def __init__(self, ds: Any, goal_dims: tuple[int, int], device: Any = None):
        ds.require_actions()
        if ds.discrete:
            raise ConfigError("rvs_g learns continuous actions only", path=str(ds.source))
        self.goal_dims = check_goal_dims(tuple(goal_dims), ds.observation_dim, str(ds.source))
        start, stop = self.goal_dims
        goals = achieved_goals(ds, stop - start)
        self.size = len(ds)
        self.num_episodes = ds.num_episodes
        self.data = jax.device_put(
            {
                "observations": jnp.asarray(ds.observations, jnp.float32),
                "actions": jnp.asarray(ds.actions, jnp.float32),
                "achieved_goals": jnp.asarray(goals),
                "episode_starts": jnp.asarray(ds.episode_starts, jnp.int32),
                "episode_lengths": jnp.asarray(ds.episode_lengths, jnp.int32),
            },
            device,
        )

    def indices(
        self, data: dict, key: jax.Array, batch_size: int
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Dataset rows ``(t, t_g)`` ``[batch_size]`` each; pure, jit-able."""
        k_episode, k1, k2 = jax.random.split(key, 3)
        episode = jax.random.randint(k_episode, (batch_size,), 0, self.num_episodes)
        length = data["episode_lengths"][episode]
        # floor(u * (L - 1)) and floor(u * L) for u ~ U[0, 1): uniform integers below L - 1 and L
        t1 = jax.random.randint(k1, (batch_size,), 0, jnp.maximum(length - 1, 1))
        t2 = jax.random.randint(k2, (batch_size,), 0, length)
        first = data["episode_starts"][episode]
        return first + jnp.minimum(t1, t2), first + jnp.maximum(t1, t2)

    def sample(self, data: dict, key: jax.Array, batch_size: int) -> dict[str, jnp.ndarray]:
        start, goal_index = self.indices(data, key, batch_size)
        goals = data["achieved_goals"][goal_index]
        lo, hi = self.goal_dims
        return {
            "observations": data["observations"][start].at[:, lo:hi].set(goals),
            "actions": data["actions"][start],
            "goals": goals,
            "start_index": start,
            "goal_index": goal_index,
        }


@dataclass(frozen=True)
class RvSGConfig(AlgoConfig):
    hidden_dims: tuple[int, ...] = (1024, 1024)  # paper: 2 x 1024 ReLU (antmaze_rvs_g.cfg)
    learning_rate: float = 1e-3  # paper: Adam 1e-3, constant
    # START,STOP: the goal is observation[START:STOP]; None = the dataset's record of where its
    # desired_goal is (the maze datasets), else the last two dimensions
    goal_dims: tuple[int, int] | None = None
    normalize_observations: bool = True


@register("rvs_g")
class RvSG(Algorithm):
    """RvS-G: an MLP policy ``pi(a | s, g)`` conditioned on a goal, fitted on hindsight goals.

    The loss is RvS-R's with the outcome a goal: ``L(theta) = -E log pi_theta(a_t | s_t, g)``,
    where in training ``g`` is the goal the same episode *achieved* at a later step ``t_g >= t``.
    At evaluation ``g`` is the environment's desired goal, already in the observation
    (``observation ++ desired_goal`` for the maze datasets): the policy keeps no carry.

    **Hindsight goals, as the official code** (github.com/scottemmons/rvs @ 90c0ffb2,
    ``src/rvs/dataset.py``: ``D4RLRvSGDataModule`` and ``D4RLIterableDataset._sample_indices``,
    whose logic is GCSL's replay buffer): each sample draws an episode uniformly, every episode
    equally likely whatever its length ``L``; then ``t1 = floor(u1 (L - 1))`` and
    ``t2 = floor(u2 L)`` with ``u1, u2 ~ U[0, 1)``; the state and action are step
    ``t = min(t1, t2)`` and the goal is that of step ``t_g = max(t1, t2)``, so
    ``P(t, t_g) = 2 / (L (L - 1))`` for ``t < t_g < L - 1``, ``1 / (L (L - 1))`` for
    ``t = t_g`` or ``t_g = L - 1`` (the present counts as the future; the last step is never a
    ``t``). The official goal is ``goal_columns`` of the *observation* at ``t_g`` (AntMaze: columns
    (0, 1), the ant's x, y; Kitchen: the whole observation; ``experiments/config/d4rl/
    antmaze_rvs_g.cfg``, ``kitchen_rvs_g.cfg``), concatenated to the observation
    (``make_s_g_tensor``). Here the goal is the dataset's ``achieved_goal`` extra array at
    ``t_g`` (Minari's field; in PointMaze the ball's x, y, ``observation[:2]``), written over the
    ``desired_goal`` slice of the observation (``goal_dims``), so the network sees ``[s, g]`` in
    training and at evaluation alike (:class:`HindsightGoalSampler`).

    **Network and optimizer** as RvS-R here and the paper's AntMaze config: MLP 2 x 1024 ReLU,
    Gaussian with a state-independent log-std, ``-mean log pi`` (``src/rvs/policies.py``:
    ``RvS.training_step``), Adam 1e-3 constant, dropout 0.

    **Differences from the official run**: batch 256 (AntMaze: 16384 for 20,000 steps; Kitchen:
    256 with dropout 0.1 for 50 epochs; ``--set batch_size=16384`` restores AntMaze's); all
    episodes train (AntMaze holds out 10% of the trajectories for a validation loss); episodes are
    the dataset's (cut at terminals and timeouts; AntMaze cuts at timeouts only); observations
    are normalized (policyfit's RvS-R does the same), the goal slice with the statistics of the
    achieved goals (computed in :meth:`prepare`; without it, those of the observation's slice);
    the Gaussian mean is tanh-bounded (SB3's is not) as in policyfit's other Gaussian actors.

    Example:
        >>> spec = DatasetSpec(observation_dim=6, action_dim=2, max_episode_length=10)
        >>> algo = RvSG(RvSGConfig(hidden_dims=(8,)))
        >>> state = algo.init(spec, jax.random.PRNGKey(0))
        >>> action, carry = algo.act(algo.policy_params(state), jnp.zeros((3, 6)), ())
        >>> action.shape, carry
        ((3, 2), ())
    """

    Config = RvSGConfig

    def __init__(self, config: AlgoConfig | None = None):
        super().__init__(config)
        # ((start, stop), {"mean", "std"}) of the achieved goals, from prepare(); None before
        self.goal_stats: tuple[tuple[int, int], dict] | None = None

    def setup(self, spec: DatasetSpec) -> None:
        if self.config.goal_dims is not None:
            check_goal_dims(tuple(self.config.goal_dims), spec.observation_dim, self.name)
        super().setup(spec)
        self.actor = GaussianPolicy(spec.action_dim, self.config.hidden_dims)
        self.optimizer = optax.adam(self.config.learning_rate)

    def prepare(self, dataset):
        """Check the goal slice and the ``achieved_goal`` array; keep the achieved goals'
        statistics to normalize the goal slice with (the data are unchanged)."""
        dims = goal_dims_of(dataset, self.config.goal_dims)
        goals = achieved_goals(dataset, dims[1] - dims[0])
        self.goal_stats = (dims, observation_stats(goals))
        return dataset

    def make_sampler(self, dataset, spec: DatasetSpec) -> HindsightGoalSampler:
        return HindsightGoalSampler(dataset, goal_dims_of(dataset, self.config.goal_dims))

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        actor = self.actor.init(key, jnp.zeros((1, spec.observation_dim)))
        obs_norm = stats_from_spec(spec, enabled=self.config.normalize_observations)
        if self.config.normalize_observations and self.goal_stats is not None:
            (lo, hi), goal_norm = self.goal_stats
            obs_norm = {k: obs_norm[k].at[lo:hi].set(goal_norm[k]) for k in ("mean", "std")}
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": obs_norm,
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def loss(self, actor_params, inputs, actions):
        """Negative log-likelihood of the logged actions given ``[s, g]``."""
        return -jnp.mean(self.actor.apply(actor_params, inputs).log_prob(actions))

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        inputs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        new_state, loss, _ = supervised_actor_step(
            self.optimizer, state, self.loss, inputs, actions
        )
        metrics = {"actor_loss": loss}
        if "goal_index" in batch:  # how far ahead the hindsight goals are, in steps
            metrics["goal_steps_ahead"] = jnp.mean(batch["goal_index"] - batch["start_index"])
        return new_state, metrics

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """The action for ``obs`` and the goal in its goal slice (the env's desired goal)."""
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        out = dist.mode() if key is None else jnp.clip(dist.sample(key), -1.0, 1.0)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The Gaussian policy's log-density (atoms on the bounds), as RvS-R's."""
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)
