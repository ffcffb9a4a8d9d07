"""Numpy (float64) forward passes of policyfit's networks, for losses computed by hand.

The loss tests (``test_loss_*.py``) set an algorithm's parameters to known random values, run one
``update`` (jitted, as the trainer runs it: one compiled program instead of hundreds of eager
ops) and compare its metrics with the paper's equations evaluated here, outside JAX. The
networks are the ones in :mod:`policyfit.nn.modules`: ReLU MLPs (optional LayerNorm before the
ReLU), a linear head; critics are ``K`` such MLPs on ``[obs, act]`` with stacked parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import DatasetSpec

OBS_EPS = 1e-3  # added to the observation std (TD3+BC, CORL)
LN_EPS = 1e-6  # flax LayerNorm's epsilon
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

# A tiny task: 2-d observations and 2-d actions in the box [-2, 2] x [-1, 3] (center (0, 1),
# half-range (2, 2)), observation statistics mean (0.5, -1), std (2, 0.5).
SPEC = DatasetSpec(
    observation_dim=2,
    action_dim=2,
    action_low=(-2.0, -1.0),
    action_high=(2.0, 3.0),
    obs_mean=(0.5, -1.0),
    obs_std=(2.0, 0.5),
    obs_next_mean=(0.4, -0.9),
    obs_next_std=(1.8, 0.6),
)
CENTER = np.array([0.0, 1.0])
HALF_RANGE = np.array([2.0, 2.0])


def make_batch(n: int = 6, seed: int = 0, reward_scale: float = 1.0) -> dict[str, np.ndarray]:
    """A batch of ``n`` transitions in the box of :data:`SPEC`; row 1 is terminal."""
    rng = np.random.default_rng(seed)
    unit = lambda: rng.uniform(-0.9, 0.9, size=(n, 2))  # noqa: E731
    terminals = np.zeros(n)
    terminals[1] = 1.0
    return {
        "observations": rng.normal(0.5, 2.0, size=(n, 2)).astype(np.float32),
        "actions": (unit() * HALF_RANGE + CENTER).astype(np.float32),
        "rewards": (reward_scale * rng.normal(size=n)).astype(np.float32),
        "terminals": terminals.astype(np.float32),
        "timeouts": np.zeros(n, np.float32),
        "next_observations": rng.normal(0.5, 2.0, size=(n, 2)).astype(np.float32),
        "next_actions": (unit() * HALF_RANGE + CENTER).astype(np.float32),
    }


def randomize(params, seed: int, scale: float = 0.8):
    """The same pytree with every leaf drawn from ``N(0, scale^2)`` (known, seeded values)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(scale * rng.normal(size=x.shape), x.dtype), params
    )


def randomize_entries(state: dict, *names: str, first_seed: int = 1) -> dict:
    """``state`` with the entries ``names`` randomized by :func:`randomize`, seeds counting up from
    ``first_seed`` in the order given (so online and target networks differ)."""
    return dict(
        state, **{name: randomize(state[name], first_seed + i) for i, name in enumerate(names)}
    )


def f64(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def norm_obs(obs, mean=SPEC.obs_mean, std=SPEC.obs_std):
    return (np.asarray(obs, np.float64) - np.asarray(mean)) / (np.asarray(std) + OBS_EPS)


def unit_actions(actions):
    return (np.asarray(actions, np.float64) - CENTER) / HALF_RANGE


def layer_norm(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * p["scale"] + p["bias"]


def mlp(p, x, layer_norm_on: bool = False):
    """``MLP(activate_final=True)``: Dense -> [LayerNorm] -> ReLU for every hidden layer."""
    i = 0
    while f"Dense_{i}" in p:
        x = x @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]
        if layer_norm_on:
            x = layer_norm(x, p[f"LayerNorm_{i}"])
        x = np.maximum(x, 0.0)
        i += 1
    return x


def critics(params, obs, act, layer_norm_on: bool = False):
    """``[K, ...]`` Q-values of an :class:`~policyfit.nn.EnsembleCritic`."""
    p = f64(params)["params"]["Vmap_Critic_0"]
    x = np.concatenate([obs, act], axis=-1)
    out = []
    for k in range(p["Dense_0"]["kernel"].shape[0]):
        one = jax.tree_util.tree_map(lambda a, k=k: a[k], p["MLP_0"])
        h = mlp(one, x, layer_norm_on)
        out.append((h @ p["Dense_0"]["kernel"][k] + p["Dense_0"]["bias"][k])[..., 0])
    return np.stack(out)


def value(params, obs):
    p = f64(params)["params"]
    return (mlp(p["MLP_0"], obs) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[..., 0]


def deterministic_actor(params, obs):
    p = f64(params)["params"]
    return np.tanh(mlp(p["MLP_0"], obs) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])


def gaussian_actor(params, obs):
    """IQL/AWAC's actor: ``(tanh(mean head), state-independent log-std)``."""
    p = f64(params)["params"]
    mean = np.tanh(mlp(p["MLP_0"], obs) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    return mean, np.broadcast_to(np.clip(p["log_std"], LOG_STD_MIN, LOG_STD_MAX), mean.shape)


def tanh_gaussian_actor(params, obs):
    """SAC/CQL's actor: pre-tanh ``(mean, log_std)`` from two heads."""
    p = f64(params)["params"]
    h = mlp(p["MLP_0"], obs)
    mean = h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    log_std = np.clip(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], LOG_STD_MIN, LOG_STD_MAX)
    return mean, log_std


def normal_log_prob(x, mean, log_std):
    """Diagonal Gaussian log-density, summed over the last axis."""
    z = (x - mean) / np.exp(log_std)
    return np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


def tanh_normal_log_prob_pre(u, mean, log_std):
    """Log-density of ``a = tanh(u)``, ``u ~ N(mean, std)`` (change of variables)."""
    return normal_log_prob(u, mean, log_std) - np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def normal_draws(key, shape):
    """The standard normal draws JAX makes from ``key`` (the sampling under test uses these)."""
    return np.asarray(jax.random.normal(key, shape), np.float64)


def metrics_f64(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def assert_trees_close(got, want, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def trees_differ(a, b) -> bool:
    return any(
        not np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


# A tiny discrete task: 2-d observations (statistics as SPEC), 3 actions.
DISCRETE_SPEC = DatasetSpec(
    observation_dim=2, action_dim=3, discrete=True, obs_mean=(0.5, -1.0), obs_std=(2.0, 0.5)
)


def make_discrete_batch(n: int = 6, seed: int = 0, reward_scale: float = 1.0):
    """A batch of ``n`` transitions with integer actions in ``{0, 1, 2}``; row 1 is terminal."""
    batch = make_batch(n, seed, reward_scale)
    rng = np.random.default_rng(seed + 100)
    batch["actions"] = rng.integers(0, DISCRETE_SPEC.action_dim, size=n).astype(np.int32)
    del batch["next_actions"]
    return batch


def discrete_q(params, obs):
    """The raw output of a :class:`~policyfit.nn.DiscreteQNetwork`, ``[B, width]`` (not reshaped)."""
    p = f64(params)["params"]
    return mlp(p["MLP_0"], obs) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]


def huber(u, kappa: float = 1.0):
    """The standard Huber loss: ``u^2 / 2`` inside ``|u| <= kappa``, ``kappa (|u| - kappa / 2)`` out."""
    a = np.abs(u)
    return np.where(a <= kappa, 0.5 * u**2, kappa * (a - 0.5 * kappa))
