"""RvS-R: reinforcement learning via supervised learning, conditioned on the average reward-to-go.

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

import jax
import jax.numpy as jnp
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
