"""MCE: Monte-Carlo Estimation of the behavior policy's Q, then one greedy improvement.

The second "value of the behavior policy" baseline of Schweighofer et al. 2022 ("A Dataset
Perspective on Offline Reinforcement Learning", CoLLAs), besides BVE (:mod:`policyfit.algos.bve`):
regress ``Q(s, a)`` of the logged action on the discounted return that followed it in the logged
episode, with no bootstrap at all,

    G_t = sum_{k=0}^{T-t} gamma^k r_{t+k}          (to the end of the episode, never across)
    L   = E_D [ Huber_1(G_t - Q(s_t, a_t)) ]

and act greedily, ``argmax_a Q(s, a)``. Because nothing bootstraps, there is no target network.

Checked against the official code, github.com/ml-jku/OfflineRL: ``source/agents/mce.py`` (the loss
is ``nn.SmoothL1Loss`` = Huber with threshold 1, mean over the batch, between ``Q(s, a)`` and the
remaining reward) and ``source/utils/buffer.py::calc_remaining_reward`` (the sum restarts at every
``done``; the study's data is gym CartPole/MinAtar, whose ``done`` includes the time limit).
So here too **a time-limit cut ends the sum like a terminal**: the data holds nothing after it, and
``G_t`` of the last steps before a cut is the truncated sum, which underestimates the value the
behavior policy would have earned. Episodes come from the dataset's episode boundaries (terminals
and timeouts), through :class:`~policyfit.data.sampler.TrajectorySampler`'s ``returns_to_go``.

Defaults are the study's (``ex_01.py`` ... ``ex_06.py`` and ``source/networks/critic.py``):
gamma 0.95, Adam 1e-4, batch 128, a 3 x 256 MLP. The official torso uses SELU activations;
policyfit's :class:`~policyfit.nn.DiscreteQNetwork` uses ReLU (shared by the whole DQN family).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = MCE(MCEConfig(hidden_dims=(8,)))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> sorted(state)
    ['obs_norm', 'q', 'q_opt', 'step']
    >>> batch = {"observations": jnp.zeros((3, 1, 4)), "actions": jnp.array([[0], [1], [1]]),
    ...          "returns_to_go": jnp.array([[1.0], [2.0], [0.5]])}
    >>> state, metrics = algo.update(state, batch, jax.random.PRNGKey(1))
    >>> sorted(metrics)
    ['q_loss', 'q_mean', 'return_mean']
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from policyfit.algos.base import DatasetSpec, register
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.algos.losses import gradient_step
from policyfit.data.sampler import TrajectorySampler
from policyfit.nn.normalization import normalize_observations, stats_from_spec


@dataclass(frozen=True)
class MCEConfig(DQNConfig):
    # Schweighofer et al. 2022, official code (ml-jku/OfflineRL ex_0*.py, source/networks/critic.py)
    hidden_dims: tuple[int, ...] = (256, 256, 256)  # 3 x 256 (SELU there, ReLU here)
    learning_rate: float = 1e-4  # Adam
    batch_size: int = 128
    discount: float = 0.95  # gamma of the return-to-go
    huber_delta: float = 1.0  # nn.SmoothL1Loss
    # inherited and unused: ``double`` and ``target_update_period`` (no target network)


@register("mce")
class MCE(DQN):
    """Monte-Carlo Estimation: Q regressed on the logged discounted return-to-go, greedy acting."""

    Config = MCEConfig

    def make_sampler(self, dataset, spec: DatasetSpec) -> TrajectorySampler:
        """One-step windows carrying the per-episode return-to-go discounted by ``gamma``."""
        return TrajectorySampler(dataset, length=1, discount=self.config.discount)

    def mc_loss(self, q_params, obs, actions, returns):
        """``(loss, metrics)``: mean Huber error of ``Q(s, a)`` against the return ``G``."""
        return self.regression_loss(q_params, obs, actions, returns)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        q = self.q_net.init(key, jnp.zeros((1, spec.observation_dim)))
        return {
            "q": q,
            "q_opt": self.optimizer.init(q),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "step": jnp.zeros((), jnp.int32),
        }

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        first = {k: v[:, 0] for k, v in batch.items()}  # windows of length 1
        obs = normalize_observations(first["observations"], state["obs_norm"])
        actions = first["actions"].astype(jnp.int32)
        returns = first["returns_to_go"].astype(jnp.float32)
        (loss, metrics), grads = jax.value_and_grad(self.mc_loss, has_aux=True)(
            state["q"], obs, actions, returns
        )
        q, q_opt = gradient_step(self.optimizer, state["q"], state["q_opt"], grads)
        new_state = dict(state, q=q, q_opt=q_opt, step=state["step"] + 1)
        return new_state, {"q_loss": loss, **metrics, "return_mean": jnp.mean(returns)}
