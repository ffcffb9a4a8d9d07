"""Discrete BCQ: Q-learning restricted to the actions the data's behavior plausibly takes.

Fujimoto et al. 2019, "Benchmarking Batch Deep Reinforcement Learning Algorithms" (Sec. 4,
Eq. 4-5), and the official code ``sfujim/BCQ/discrete_BCQ/discrete_BCQ.py`` (read for this file).
Next to the Q-network the agent fits a generative model ``G(a|s)`` of the logged actions by maximum
likelihood. An action is allowed in state ``s`` when its probability relative to the most likely
action exceeds the threshold ``tau``,

    A(s) = { a : G(a|s) / max_a^ G(a^|s) > tau },

and both the bootstrap and the policy take the argmax of ``Q`` over ``A(s)`` only:

    a' = argmax_{a' in A(s')} Q(s', a')           (online network picks, as in Double DQN)
    y  = r + gamma (1 - d) Q'(s', a')
    L  = Huber_1(y - Q(s, a)) - log G(a|s) + 0.01 * mean(logits_G(s)^2)
    pi(s) = argmax_{a in A(s)} Q(s, a)

``tau = 0`` is Double DQN (every action allowed); ``tau -> 1`` keeps only ``argmax_a G(a|s)``, i.e.
behavior cloning. As in the official code, ``Q`` and ``G`` are two separate MLPs trained by one
optimizer on the summed loss, and the target network copies both.

Defaults are the official code's "regular" (non-Atari) parameters: threshold 0.3, MLPs 256x256,
Adam 3e-4, batch 64, gamma 0.99, Polyak target updates with tau 0.005. ``target_tau=None`` switches
to the Atari setting's periodic copy every ``target_update_period`` updates (8000 there).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=4, action_dim=2, discrete=True)
    >>> algo = DiscreteBCQ(DiscreteBCQConfig(hidden_dims=(8,)))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> batch = {"observations": jnp.zeros((3, 4)), "actions": jnp.array([0, 1, 1]),
    ...          "rewards": jnp.ones(3), "terminals": jnp.zeros(3),
    ...          "next_observations": jnp.zeros((3, 4))}
    >>> state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(1))
    >>> sorted(metrics)
    ['imitation_loss', 'q_loss', 'q_mean', 'td_loss']
    >>> actions, _ = algo.act(algo.policy_params(state), jnp.zeros((3, 4)), ())
    >>> actions.dtype
    dtype('int32')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from policyfit.algos.base import Carry, DatasetSpec, register
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.algos.losses import soft_update
from policyfit.errors import ConfigError
from policyfit.nn import CategoricalPolicy, DiscreteQNetwork
from policyfit.nn.normalization import normalize_observations

MASKED = -1e8  # the official code's stand-in for -inf in the masked argmax


class QAndBehavior(nn.Module):
    """Two separate MLPs on the same input: ``(Q(s, .), logits of G(.|s))``, each ``[B, n]``."""

    n_actions: int
    hidden_dims: Sequence[int]

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        q = DiscreteQNetwork(self.n_actions, self.hidden_dims, name="q")(obs)
        logits = CategoricalPolicy(self.n_actions, self.hidden_dims, name="behavior")(obs)
        return q, logits


@dataclass(frozen=True)
class DiscreteBCQConfig(DQNConfig):
    # sfujim/BCQ discrete_BCQ/main.py, regular_parameters and --BCQ_threshold
    threshold: float = 0.3  # tau: allowed actions have G(a|s) / max G(.|s) > threshold
    batch_size: int = 64
    learning_rate: float = 3e-4  # Adam, one optimizer for Q and G
    target_tau: float | None = 0.005  # Polyak step; None: copy every target_update_period
    target_update_period: int = 8000  # the Atari setting's copy period (used when target_tau=None)
    imitation_logit_penalty: float = 1e-2  # 0.01 * mean(logits^2) in the official code
    # inherited: hidden_dims (256, 256), huber_delta 1 (smooth L1), discount 0.99; ``double`` is
    # unused (BCQ's online network always picks a')


@register("bcq_discrete")
class DiscreteBCQ(DQN):
    """Discrete batch-constrained Q-learning (Fujimoto et al. 2019)."""

    Config = DiscreteBCQConfig

    def setup(self, spec: DatasetSpec) -> None:
        if not 0.0 <= self.config.threshold < 1.0:
            raise ConfigError(
                "must lie in [0, 1) (1 would mask every action)", path=self.name, field="threshold"
            )
        tau = self.config.target_tau
        if tau is not None and not 0.0 < tau <= 1.0:
            raise ConfigError("must lie in (0, 1] or be None", path=self.name, field="target_tau")
        super().setup(spec)

    def network(self, spec: DatasetSpec) -> QAndBehavior:
        return QAndBehavior(spec.action_dim, self.config.hidden_dims)

    def q_values(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        return self.q_net.apply(params, obs)[0]

    def allowed(self, logits: jnp.ndarray) -> jnp.ndarray:
        """``G(a|s) / max G(.|s) > threshold`` as a boolean ``[B, n]`` mask."""
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        ratio = jnp.exp(log_probs - jnp.max(log_probs, axis=-1, keepdims=True))
        return ratio > self.config.threshold

    def constrained_argmax(self, params, obs: jnp.ndarray) -> jnp.ndarray:
        """``argmax_{a in A(s)} Q(s, a)`` with the online network's ``Q`` and ``G``."""
        q, logits = self.q_net.apply(params, obs)
        return jnp.argmax(jnp.where(self.allowed(logits), q, MASKED), axis=-1)

    def next_actions(self, q_params, target_params, next_obs: jnp.ndarray, batch: dict):
        return self.constrained_argmax(jax.lax.stop_gradient(q_params), next_obs)

    def td_loss(self, q_params, target_params, obs, actions, batch, next_obs, key):
        """Huber TD loss (DQN's, with the constrained ``a'``) + G's cross-entropy + logit penalty."""
        td, metrics = super().td_loss(q_params, target_params, obs, actions, batch, next_obs, key)
        logits = self.q_net.apply(q_params, obs)[1]
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.mean(jnp.take_along_axis(log_probs, actions[:, None], axis=-1)[:, 0])
        penalty = self.config.imitation_logit_penalty * jnp.mean(logits**2)
        loss = td + nll + penalty
        return loss, {**metrics, "td_loss": td, "imitation_loss": nll}

    def target_update(self, target, online, step: jnp.ndarray):
        """Polyak averaging with ``target_tau`` (the official non-Atari setting), else DQN's copy."""
        if self.config.target_tau is None:
            return super().target_update(target, online, step)
        return soft_update(target, online, self.config.target_tau)

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """``argmax`` of ``Q`` over the allowed actions (deterministic; ``key`` is ignored)."""
        norm = normalize_observations(obs, params["obs_norm"])
        return self.constrained_argmax(params["q"], norm).astype(jnp.int32), carry
