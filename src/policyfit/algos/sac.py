"""Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018, "Soft Actor-Critic
Algorithms and Applications", arXiv:1812.05905).

Online, off-policy: it is used only by the online trainer of the built-in suite's behavior policies
(:mod:`policyfit.training.behavior`, which steps the environments and calls :meth:`SAC.update`).
It is an *online learner*, not an :class:`~policyfit.algos.base.Algorithm`: it is not registered,
``policyfit train`` does not offer it, and its ``act`` has no carry. It shares the config base class
and the pure ``init`` / ``update`` style with the offline algorithms.

One :meth:`SAC.update` is one gradient step on each of the three objectives, in this order:

* critic (Eq. 5, with the soft value of Eq. 3 as the target, and the clipped double-Q trick of
  Fujimoto et al. 2018 that the SAC paper uses: the minimum of two target critics);
* actor (Eq. 7, reparameterized through the tanh-Gaussian of Appendix C);
* temperature ``alpha`` (Eq. 18: keep the policy's entropy near ``target_entropy``);

then a Polyak update of the target critics (``tau``).

Example:
    >>> import jax, numpy as np
    >>> from policyfit.algos.base import DatasetSpec
    >>> from policyfit.algos.sac import SAC, SACConfig
    >>> algo = SAC(SACConfig(hidden_dims=(32, 32), batch_size=8))
    >>> state = algo.init(DatasetSpec(observation_dim=3, action_dim=1), jax.random.PRNGKey(0))
    >>> batch = {"observations": np.zeros((8, 3), np.float32), "actions": np.zeros((8, 1), np.float32),
    ...          "rewards": np.ones(8, np.float32), "terminals": np.zeros(8, np.float32),
    ...          "next_observations": np.zeros((8, 3), np.float32)}
    >>> update = jax.jit(algo.update)  # one compiled program, as the trainer runs it
    >>> state, metrics = update(state, batch, jax.random.PRNGKey(1))
    >>> sorted(metrics)[:3]
    ['actor_loss', 'alpha', 'alpha_loss']
    >>> algo.act(state.actor_params, np.zeros((2, 3), np.float32)).shape
    (2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, DatasetSpec, Metrics
from policyfit.nn import EnsembleCritic, TanhGaussianPolicy


@dataclass(frozen=True)
class SACConfig(AlgoConfig):
    """SAC hyperparameters; defaults are Table 1 of Haarnoja et al. (2018)."""

    batch_size: int = 256
    discount: float = 0.99  # gamma
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    tau: float = 0.005  # target smoothing coefficient
    hidden_dims: tuple[int, ...] = (256, 256)
    n_critics: int = 2
    init_alpha: float = 1.0
    # H-bar in Eq. 18; None means the paper's heuristic -dim(A).
    target_entropy: float | None = None


@flax.struct.dataclass
class SACState:
    """Everything SAC learns, one pytree (checkpointable with ``flax.serialization``)."""

    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jnp.ndarray
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    step: jnp.ndarray


class SAC:
    """Soft Actor-Critic; see the module docstring for the equations."""

    name: ClassVar[str] = "sac"
    Config = SACConfig

    def __init__(self, config: SACConfig | None = None):
        self.config = config if config is not None else SACConfig()

    # Equal configs give equal (pure) functions: lets callers cache jitted code per config.
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config == self.config

    def __hash__(self) -> int:
        return hash((type(self), self.config))

    # ------------------------------------------------------------------ networks
    def networks(self, action_dim: int) -> tuple[TanhGaussianPolicy, EnsembleCritic]:
        cfg: SACConfig = self.config  # type: ignore[assignment]
        actor = TanhGaussianPolicy(action_dim=action_dim, hidden_dims=tuple(cfg.hidden_dims))
        critic = EnsembleCritic(hidden_dims=tuple(cfg.hidden_dims), n_critics=cfg.n_critics)
        return actor, critic

    def _optimizers(self) -> tuple[optax.GradientTransformation, ...]:
        cfg: SACConfig = self.config  # type: ignore[assignment]
        return optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr)

    def _target_entropy(self, action_dim: int) -> float:
        cfg: SACConfig = self.config  # type: ignore[assignment]
        return -float(action_dim) if cfg.target_entropy is None else float(cfg.target_entropy)

    # ------------------------------------------------------------------ contract
    def init(self, spec: DatasetSpec, key: Any) -> SACState:
        """Fresh networks, target critics equal to the critics, Adam states, ``alpha = init_alpha``."""
        cfg: SACConfig = self.config  # type: ignore[assignment]
        actor, critic = self.networks(spec.action_dim)
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, spec.observation_dim), jnp.float32)
        act = jnp.zeros((1, spec.action_dim), jnp.float32)
        actor_params = actor.init(k_actor, obs)
        critic_params = critic.init(k_critic, obs, act)
        log_alpha = jnp.asarray(jnp.log(cfg.init_alpha), jnp.float32)
        actor_tx, critic_tx, alpha_tx = self._optimizers()
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            # A copy, not an alias: the trainer donates the state's buffers to the jitted update.
            target_critic_params=jax.tree_util.tree_map(jnp.copy, critic_params),
            log_alpha=log_alpha,
            actor_opt=actor_tx.init(actor_params),
            critic_opt=critic_tx.init(critic_params),
            alpha_opt=alpha_tx.init(log_alpha),
            step=jnp.zeros((), jnp.int32),
        )

    def update(self, state: SACState, batch: dict[str, Any], key: Any) -> tuple[SACState, Metrics]:
        """One gradient step on critic, actor and temperature, then the target update. Pure."""
        cfg: SACConfig = self.config  # type: ignore[assignment]
        action_dim = batch["actions"].shape[-1]
        actor, critic = self.networks(action_dim)
        actor_tx, critic_tx, alpha_tx = self._optimizers()
        target_entropy = self._target_entropy(action_dim)
        k_next, k_pi = jax.random.split(key)

        obs, actions = batch["observations"], batch["actions"]
        rewards, next_obs = batch["rewards"], batch["next_observations"]
        # Only true terminal states stop bootstrapping; time-limit cuts (timeouts) do not.
        not_done = 1.0 - batch["terminals"].astype(jnp.float32)
        alpha = jnp.exp(state.log_alpha)

        # Critic, Eq. 5: regress Q(s, a) onto r + gamma * V(s'), where the soft value (Eq. 3) is
        # V(s') = min_i Q_target_i(s', a') - alpha log pi(a'|s'),  a' ~ pi(.|s').
        next_actions, next_log_prob = actor.apply(state.actor_params, next_obs).sample_and_log_prob(
            k_next
        )
        next_q = critic.apply(state.target_critic_params, next_obs, next_actions).min(axis=0)
        target_q = rewards + cfg.discount * not_done * (next_q - alpha * next_log_prob)
        target_q = jax.lax.stop_gradient(target_q)

        def critic_loss_fn(critic_params):
            q = critic.apply(critic_params, obs, actions)  # [n_critics, B]
            return 0.5 * ((q - target_q[None]) ** 2).mean(axis=1).sum(), q.mean()

        (critic_loss, q_mean), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
            state.critic_params
        )
        critic_updates, critic_opt = critic_tx.update(
            critic_grads, state.critic_opt, state.critic_params
        )
        critic_params = optax.apply_updates(state.critic_params, critic_updates)

        # Actor, Eq. 7: minimize E[alpha log pi(f(eps; s)|s) - min_i Q_i(s, f(eps; s))], the action
        # reparameterized as a = tanh(mu + sigma * eps) so gradients flow through the sample.
        def actor_loss_fn(actor_params):
            pi_actions, log_prob = actor.apply(actor_params, obs).sample_and_log_prob(k_pi)
            q = critic.apply(critic_params, obs, pi_actions).min(axis=0)
            return (alpha * log_prob - q).mean(), log_prob

        (actor_loss, log_prob), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
            state.actor_params
        )
        actor_updates, actor_opt = actor_tx.update(actor_grads, state.actor_opt, state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, actor_updates)

        # Temperature, Eq. 18: J(alpha) = E[-alpha log pi(a|s) - alpha H-bar]; optimized in log space
        # (as the authors' code does) so alpha stays positive.
        entropy = -jax.lax.stop_gradient(log_prob).mean()

        def alpha_loss_fn(log_alpha):
            return jnp.exp(log_alpha) * (entropy - target_entropy)

        alpha_loss, alpha_grad = jax.value_and_grad(alpha_loss_fn)(state.log_alpha)
        alpha_updates, alpha_opt = alpha_tx.update(alpha_grad, state.alpha_opt, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, alpha_updates)

        # Target critics: exponential moving average with rate tau.
        target_critic_params = optax.incremental_update(
            critic_params, state.target_critic_params, cfg.tau
        )

        new_state = SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=target_critic_params,
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha_loss": alpha_loss,
            "alpha": alpha,
            "entropy": entropy,
            "q_mean": q_mean,
        }
        return new_state, metrics

    def act(self, params: Any, obs: Any, key: Any = None) -> jnp.ndarray:
        """Actions in ``[-1, 1]``: ``tanh(mean)`` when ``key`` is None, else a policy sample.

        ``params`` are the actor's (``state.actor_params``); the action dimension is read from them.
        """
        action_dim = _actor_action_dim(params)
        actor, _ = self.networks(action_dim)
        dist = actor.apply(params, jnp.asarray(obs, jnp.float32))
        return dist.mode() if key is None else dist.sample(key)


def _actor_action_dim(actor_params: Any) -> int:
    """The action dimension of a :class:`TanhGaussianPolicy`'s parameters (its mean head's width)."""
    leaves = actor_params.get("params", actor_params)
    dense = sorted(k for k in leaves if k.startswith("Dense_"))
    return int(leaves[dense[0]]["kernel"].shape[-1])
