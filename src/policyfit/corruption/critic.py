"""The attacker's critic: a Q-ensemble fitted on the clean dataset, cached on disk.

Yang et al. (ICLR 2024) attack with a pretrained EDAC agent (10 critics and its actor). policyfit
does not depend on a trained agent being available, so it fits its own, small and fast on a CPU:

* a deterministic **behavior-cloning policy** ``π(s) = argmin E‖π(s) - a‖²`` over the dataset, and
* an **ensemble of K Q-networks** (:class:`policyfit.nn.EnsembleCritic`) that evaluates π by fitted Q
  evaluation — each member regresses on its own target network,
  ``Q_k(s, a) ← r + γ (1 - d) Q̄_k(s', π(s'))`` (SARSA-style TD on the dataset's own actions at
  ``(s, a)``, π only at ``s'``),

trained together in one jitted ``lax.scan`` over ``steps`` minibatch updates. ``π`` is the policy the
dynamics attack needs for ``Q(s' + δ, π(s' + δ))`` (the paper used EDAC's actor there): the critic
values exactly that policy, so the attack lowers the value the critic actually estimates.
Observations enter both networks normalized by the dataset's mean/std, and π maps ``tanh`` onto the
dataset's action box.

The fitted critic is cached as msgpack (no pickle) under
``$POLICYFIT_HOME/critics/<dataset fingerprint>-<config hash>.msgpack``; a changed config or dataset
gives a different file, an unreadable file is refitted.

Example:
    >>> from policyfit.corruption.critic import CriticConfig, fit_clean_critic
    >>> critic = fit_clean_critic(ds, CriticConfig(n_critics=3, hidden_dims=(32, 32), steps=200))  # doctest: +SKIP
    >>> critic.q_values(ds.observations[:4], ds.actions[:4]).shape   # doctest: +SKIP
    (3, 4)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from policyfit.common.checks import check_float, check_int
from policyfit.common.files import atomic_write_bytes, dumps
from policyfit.data.corrupt import action_bounds
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.nn.modules import DeterministicPolicy, EnsembleCritic
from policyfit.nn.normalization import normalize_observations, observation_stats
from policyfit.paths import home

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CriticConfig:
    """How the attacker's critic is fitted (defaults: small enough for a CPU, a minute or less)."""

    n_critics: int = 5  # K; the paper's EDAC ensemble had 10
    hidden_dims: tuple[int, ...] = (128, 128)
    steps: int = 5_000  # minibatch updates of both π and the ensemble
    batch_size: int = 256
    learning_rate: float = 3e-4
    discount: float = 0.99  # γ
    tau: float = 0.005  # soft target update rate
    seed: int = 0  # independent of the corruption seed: one critic serves every corruption seed

    def __post_init__(self) -> None:
        """Check every field (a ConfigError naming ``critic_config.<field>``), convert the types."""
        dims = self.hidden_dims
        if isinstance(dims, int | str) or not hasattr(dims, "__iter__"):
            raise ConfigError(
                f"must be a sequence of layer widths, e.g. (128, 128), got {dims!r}",
                field="critic_config.hidden_dims",
            )
        dims = tuple(check_int(h, "critic_config.hidden_dims", minimum=1) for h in dims)
        ints = {"n_critics": 1, "steps": 1, "batch_size": 1, "seed": 0}
        values: dict[str, Any] = {"hidden_dims": dims}
        for name, minimum in ints.items():
            values[name] = check_int(getattr(self, name), f"critic_config.{name}", minimum=minimum)
        values["learning_rate"] = check_float(
            self.learning_rate, "critic_config.learning_rate", low=0.0, low_open=True
        )
        values["discount"] = check_float(
            self.discount, "critic_config.discount", low=0.0, high=1.0, high_open=True
        )
        values["tau"] = check_float(self.tau, "critic_config.tau", low=0.0, high=1.0, low_open=True)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    def cache_key(self) -> str:
        text = dumps({"format": CACHE_FORMAT, **self.to_dict()}, indent=None, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CleanCritic:
    """A fitted Q-ensemble and its BC policy, with the input statistics they were trained with."""

    config: CriticConfig
    critic_params: Any
    policy_params: Any
    obs_stats: dict[str, Any]  # {"mean", "std"} of observations
    action_scale: dict[str, Any]  # {"center", "half_range"}: tanh output -> dataset action box
    fingerprint: str  # of the dataset it was fitted on
    metrics: dict[str, float] = field(default_factory=dict)
    cache_path: str | None = None

    @property
    def action_dim(self) -> int:
        return int(np.asarray(self.action_scale["center"]).shape[0])

    @property
    def params(self) -> dict[str, Any]:
        """Everything :func:`q_apply` and :func:`policy_apply` need, as one pytree."""
        return {
            "critic": self.critic_params,
            "policy": self.policy_params,
            "obs_stats": self.obs_stats,
            "action_scale": self.action_scale,
        }

    def q_fn(self):
        """A pure ``(obs, act) -> [K, B]`` function closing over the parameters (jit-able)."""
        return partial(q_apply, self.config, self.action_dim, self.params)

    def policy_fn(self):
        """A pure ``obs -> act`` function (the BC policy, in the dataset's action units)."""
        return partial(policy_apply, self.config, self.action_dim, self.params)

    def q_values(self, obs: np.ndarray, act: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """``[K, N]`` Q-values of the ensemble (numpy in, numpy out; batched)."""
        fn = partial(_q_jit, self.config, self.action_dim, self.params)
        return _batched(fn, batch_size, obs, act, axis=1)

    def policy_actions(self, obs: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """``[N, act_dim]`` actions of the BC policy."""
        fn = partial(_policy_jit, self.config, self.action_dim, self.params)
        return _batched(fn, batch_size, obs, axis=0)

    def description(self) -> str:
        k, dims = self.config.n_critics, "x".join(map(str, self.config.hidden_dims))
        return (
            f"critic: a policyfit EnsembleCritic (K={k}, {dims}) fitted on the clean data by fitted "
            f"Q evaluation of a behavior-cloning policy ({self.config.steps} steps; dataset "
            f"{self.fingerprint}); the paper attacked with a pretrained EDAC ensemble"
        )

    def info(self) -> dict[str, Any]:
        """What goes into ``metadata["corruption"]["critic"]``."""
        return {
            "kind": "policyfit.nn.EnsembleCritic",
            "fitted_by": "fitted Q evaluation of a deterministic BC policy on the clean dataset",
            "policy": "deterministic BC policy fitted alongside (used for the dynamics attack)",
            "paper_used": "pretrained EDAC ensemble (10 critics) and its actor",
            "config": self.config.to_dict(),
            "trained_on": self.fingerprint,
            "metrics": self.metrics,
            "cache_path": self.cache_path,
            "description": self.description(),
        }


def _batched(fn, batch_size: int, *arrays: np.ndarray, axis: int) -> np.ndarray:
    """Apply ``fn`` in fixed-size batches (the last one padded, so it compiles once)."""
    n = len(arrays[0])
    outs = []
    for start in range(0, n, batch_size):
        chunk = [np.asarray(a[start : start + batch_size], np.float32) for a in arrays]
        m = len(chunk[0])
        size = min(batch_size, n)
        if m < size:
            chunk = [np.concatenate([c, np.repeat(c[-1:], size - m, axis=0)]) for c in chunk]
        out = np.asarray(fn(*chunk))
        outs.append(out[:, :m] if axis == 1 else out[:m])
    return np.concatenate(outs, axis=axis)


def _modules(config: CriticConfig, act_dim: int) -> tuple[EnsembleCritic, DeterministicPolicy]:
    return (
        EnsembleCritic(hidden_dims=tuple(config.hidden_dims), n_critics=config.n_critics),
        DeterministicPolicy(action_dim=act_dim, hidden_dims=tuple(config.hidden_dims)),
    )


def q_apply(
    config: CriticConfig, act_dim: int, params: dict[str, Any], obs: jnp.ndarray, act: jnp.ndarray
) -> jnp.ndarray:
    """``[K, B]`` ensemble Q-values at raw (unnormalized) observations and dataset-unit actions."""
    critic, _ = _modules(config, act_dim)
    obs = normalize_observations(obs, params["obs_stats"])
    return critic.apply({"params": params["critic"]}, obs, act)


def policy_apply(
    config: CriticConfig, act_dim: int, params: dict[str, Any], obs: jnp.ndarray
) -> jnp.ndarray:
    """``[B, act_dim]`` BC-policy actions in the dataset's action units."""
    _, policy = _modules(config, act_dim)
    unit = policy.apply(
        {"params": params["policy"]}, normalize_observations(obs, params["obs_stats"])
    )
    return unit * params["action_scale"]["half_range"] + params["action_scale"]["center"]


# Compiled once per (config, shapes): the parameters are arguments, not baked-in constants.
_q_jit = jax.jit(q_apply, static_argnums=(0, 1))
_policy_jit = jax.jit(policy_apply, static_argnums=(0, 1))


# ----------------------------------------------------------------------------- fitting
def _action_scale(ds: Dataset) -> dict[str, jnp.ndarray]:
    low, high = action_bounds(ds)
    width = np.where(high > low, (high - low) / 2.0, 1.0)
    return {
        "center": jnp.asarray((high + low) / 2.0, jnp.float32),
        "half_range": jnp.asarray(width, jnp.float32),
    }


@partial(jax.jit, static_argnames=("config", "act_dim"))
def _fit(
    config: CriticConfig,
    act_dim: int,
    data: dict[str, jnp.ndarray],
    obs_stats: dict[str, jnp.ndarray],
    action_scale: dict[str, jnp.ndarray],
    key: jax.Array,
):
    critic, policy = _modules(config, act_dim)
    n = data["rewards"].shape[0]
    k_critic, k_policy, k_steps = jax.random.split(key, 3)
    obs0 = jnp.zeros((1, data["observations"].shape[1]), jnp.float32)
    critic_params = critic.init(k_critic, obs0, jnp.zeros((1, act_dim), jnp.float32))["params"]
    policy_params = policy.init(k_policy, obs0)["params"]
    opt = optax.adam(config.learning_rate)

    def act(p, obs):
        return policy_apply(
            config,
            act_dim,
            {"policy": p, "obs_stats": obs_stats, "action_scale": action_scale},
            obs,
        )

    def q(c, obs, a):
        return q_apply(config, act_dim, {"critic": c, "obs_stats": obs_stats}, obs, a)

    def step(carry, key):
        c_params, c_target, p_params, c_opt, p_opt = carry
        idx = jax.random.randint(key, (config.batch_size,), 0, n)
        s, a = data["observations"][idx], data["actions"][idx]
        r, s2, done = data["rewards"][idx], data["next_observations"][idx], data["terminals"][idx]

        def bc_loss(p):  # deterministic behavior cloning, mean squared error in action units
            return jnp.mean(jnp.sum((act(p, s) - a) ** 2, axis=-1))

        pi_loss, p_grads = jax.value_and_grad(bc_loss)(p_params)
        p_updates, p_opt = opt.update(p_grads, p_opt, p_params)
        p_params = optax.apply_updates(p_params, p_updates)

        # Fitted Q evaluation of π: each member bootstraps from its own target network.
        a2 = jax.lax.stop_gradient(act(p_params, s2))
        q_next = q(c_target, s2, a2)  # [K, B]
        target = r + config.discount * (1.0 - done) * q_next

        def td_loss(c):
            return jnp.mean((q(c, s, a) - jax.lax.stop_gradient(target)) ** 2)

        q_loss, c_grads = jax.value_and_grad(td_loss)(c_params)
        c_updates, c_opt = opt.update(c_grads, c_opt, c_params)
        c_params = optax.apply_updates(c_params, c_updates)
        c_target = optax.incremental_update(c_params, c_target, config.tau)
        return (c_params, c_target, p_params, c_opt, p_opt), (q_loss, pi_loss)

    carry = (
        critic_params,
        critic_params,
        policy_params,
        opt.init(critic_params),
        opt.init(policy_params),
    )
    carry, (q_losses, pi_losses) = jax.lax.scan(
        step, carry, jax.random.split(k_steps, config.steps)
    )
    tail = max(1, config.steps // 10)
    return carry[0], carry[2], q_losses[-tail:].mean(), pi_losses[-tail:].mean()


def fit_clean_critic(ds: Dataset, config: CriticConfig | None = None) -> CleanCritic:
    """Fit the BC policy and the Q-ensemble on ``ds`` (no cache; see :func:`load_or_fit_critic`).

    Example:
        >>> critic = fit_clean_critic(ds, CriticConfig(steps=500))   # doctest: +SKIP
        >>> critic.metrics["td_loss"] < 10.0                          # doctest: +SKIP
        True
    """
    config = config or CriticConfig()
    if ds.discrete:
        raise PolicyfitError(
            "adversarial corruption needs continuous actions (the critic takes Q(s, a) with a "
            "real-valued a); use --mode random",
            path=ds.source,
            field="actions",
        )
    stats = observation_stats(ds.observations)
    scale = _action_scale(ds)
    data = {
        "observations": jnp.asarray(ds.observations, jnp.float32),
        "actions": jnp.asarray(ds.actions, jnp.float32),
        "rewards": jnp.asarray(ds.rewards, jnp.float32),
        "next_observations": jnp.asarray(ds.next_observations, jnp.float32),
        "terminals": jnp.asarray(ds.terminals, jnp.float32),
    }
    t0 = time.perf_counter()
    c_params, p_params, q_loss, pi_loss = _fit(
        config, ds.action_dim, data, stats, scale, jax.random.PRNGKey(config.seed)
    )
    metrics = {
        "td_loss": float(q_loss),
        "bc_loss": float(pi_loss),
        "fit_seconds": round(time.perf_counter() - t0, 2),
    }
    return CleanCritic(
        config=config,
        critic_params=jax.device_get(c_params),
        policy_params=jax.device_get(p_params),
        obs_stats=jax.device_get(stats),
        action_scale=jax.device_get(scale),
        fingerprint=ds.fingerprint(),
        metrics=metrics,
    )


# ----------------------------------------------------------------------------- cache
def critic_cache_path(ds: Dataset, config: CriticConfig) -> Path:
    """``$POLICYFIT_HOME/critics/<fingerprint>-<config hash>.msgpack``."""
    return home() / "critics" / f"{ds.fingerprint()}-{config.cache_key()}.msgpack"


def save_critic(critic: CleanCritic, path: str | os.PathLike) -> Path:
    """Write the critic as msgpack (arrays and JSON text only; atomic rename)."""
    payload = {
        "format": CACHE_FORMAT,
        "config": dumps(critic.config.to_dict(), indent=None, sort_keys=True),
        "fingerprint": critic.fingerprint,
        "metrics": dumps(critic.metrics, indent=None),
        "critic_params": critic.critic_params,
        "policy_params": critic.policy_params,
        "obs_stats": critic.obs_stats,
        "action_scale": critic.action_scale,
    }
    data = serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, payload))
    return atomic_write_bytes(path, data)


def load_critic(
    path: str | os.PathLike, config: CriticConfig, fingerprint: str
) -> CleanCritic | None:
    """Read a cached critic; None if missing, unreadable, or fitted with another config or dataset."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        state = serialization.msgpack_restore(p.read_bytes())
        if state.get("format") != CACHE_FORMAT or state.get("fingerprint") != fingerprint:
            return None
        if json.loads(state["config"]) != json.loads(dumps(config.to_dict(), indent=None)):
            return None
        return CleanCritic(
            config=config,
            critic_params=state["critic_params"],
            policy_params=state["policy_params"],
            obs_stats=state["obs_stats"],
            action_scale=state["action_scale"],
            fingerprint=fingerprint,
            metrics=json.loads(state["metrics"]),
            cache_path=str(p),
        )
    except Exception:  # a truncated or foreign file: refit rather than fail
        return None


def load_or_fit_critic(
    ds: Dataset, config: CriticConfig | None = None, *, cache: bool = True
) -> CleanCritic:
    """The cached critic for ``(ds, config)``, fitting and caching it on first use.

    Example:
        >>> critic = load_or_fit_critic(ds)          # fits (about a minute on a CPU) and caches  # doctest: +SKIP
        >>> load_or_fit_critic(ds).cache_path        # second call: read from disk               # doctest: +SKIP
        '.../critics/3f2a...-8c1d....msgpack'
    """
    config = config or CriticConfig()
    path = critic_cache_path(ds, config)
    if cache:
        found = load_critic(path, config, ds.fingerprint())
        if found is not None:
            return found
    critic = fit_clean_critic(ds, config)
    if not cache:
        return critic
    save_critic(critic, path)
    return CleanCritic(**{**critic.__dict__, "cache_path": str(path)})
