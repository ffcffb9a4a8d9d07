"""Behavior cloning, and %BC (BC on the top fraction of trajectories by return).

BC maximizes the likelihood of the logged actions, ``max_pi E_(s,a)~D [log pi(a|s)]``; with a
deterministic policy that is the mean squared error ``E ||pi(s) - a||^2``. %BC (Chen et al. 2021,
"Decision Transformer", Sec. 5.2; CORL ``any_percent_bc.py``) first keeps only the best
``top_fraction`` of trajectories — a strong baseline on mixed-quality data.

Hyperparameters follow CORL (Tarasov et al. 2022): MLP 256x2, Adam 3e-4, batch 256, observation
normalization; CORL's 10%BC uses ``top_fraction = 0.1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import supervised_actor_step
from policyfit.algos.propensity import box_action_log_prob
from policyfit.errors import ConfigError
from policyfit.nn import DeterministicPolicy, GaussianPolicy
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)

POLICY_KINDS = ("deterministic", "gaussian")


def top_fraction_episodes(ds, fraction: float):
    """The ``fraction`` of ``ds``'s episodes with the highest return, in their original order."""
    if fraction >= 1.0:
        return ds
    keep = max(1, math.ceil(fraction * ds.num_episodes))
    best = np.argsort(-ds.episode_returns(), kind="stable")[:keep]
    return ds.select_episodes(np.sort(best))


@dataclass(frozen=True)
class BCConfig(AlgoConfig):
    policy: str = (
        "deterministic"  # "deterministic" (MSE, CORL) or "gaussian" (negative log-likelihood)
    )
    top_fraction: float = 1.0  # %BC: keep this fraction of trajectories by return (CORL 10%BC: 0.1)
    hidden_dims: tuple[int, ...] = (256, 256)  # CORL
    learning_rate: float = 3e-4  # CORL
    normalize_observations: bool = True  # CORL `normalize=True`


@register("bc")
class BC(Algorithm):
    """Behavior cloning (``top_fraction < 1``: %BC)."""

    Config = BCConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.policy not in POLICY_KINDS:
            raise ConfigError(
                f"unknown policy {cfg.policy!r}; valid: {', '.join(POLICY_KINDS)}",
                path=self.name,
                field="policy",
            )
        if not 0.0 < cfg.top_fraction <= 1.0:
            raise ConfigError("must lie in (0, 1]", path=self.name, field="top_fraction")
        self.spec = spec
        if cfg.policy == "gaussian":
            self.actor = GaussianPolicy(spec.action_dim, cfg.hidden_dims)
        else:
            self.actor = DeterministicPolicy(spec.action_dim, cfg.hidden_dims)
        self.optimizer = optax.adam(cfg.learning_rate)

    def prepare(self, ds):
        """%BC: the ``top_fraction`` of episodes with the highest return (all of them for BC)."""
        return top_fraction_episodes(ds, self.config.top_fraction)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        actor = self.actor.init(key, jnp.zeros((1, spec.observation_dim)))
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def loss(self, actor_params, obs, actions):
        if self.config.policy == "gaussian":
            return -jnp.mean(self.actor.apply(actor_params, obs).log_prob(actions))
        return jnp.mean(jnp.sum((self.actor.apply(actor_params, obs) - actions) ** 2, axis=-1))

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        obs = normalize_observations(batch["observations"], state["obs_norm"])
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        new_state, loss, _ = supervised_actor_step(self.optimizer, state, self.loss, obs, actions)
        return new_state, {"actor_loss": loss}

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        out = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        if self.config.policy == "gaussian":
            out = out.mode() if key is None else jnp.clip(out.sample(key), -1.0, 1.0)
        return from_unit_actions(out, params["action_scale"]), carry

    def action_log_prob(self, params: dict, obs, carry: Carry, actions) -> jnp.ndarray:
        """The Gaussian policy's log-density (clipped samples: atoms on the bounds); the
        deterministic policy has none (NotImplementedError)."""
        if self.config.policy != "gaussian":
            return super().action_log_prob(params, obs, carry, actions)
        dist = self.actor.apply(params["actor"], normalize_observations(obs, params["obs_norm"]))
        return box_action_log_prob(dist, actions, params["action_scale"], clipped=True)
