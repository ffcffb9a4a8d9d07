"""SquareCB on a stream, jitted: one ``lax.scan`` step per round.

Each round ``t``: predict ``f(x_t, a)`` with per-action ridge regression (the oracle of
:mod:`policyfit.bandit.oracle`, kept as inverse Gram matrices with Sherman-Morrison rank-one
updates, so a round costs ``O(K p + p^2)``), play inverse-gap weighting with
``gamma_t = gamma_scale * t ** gamma_exponent`` over the available actions (Vowpal Wabbit's
``--squarecb`` schedule, defaults 10 and 0.5, ``t`` = rounds learned so far), observe the chosen
action's reward, update that action's regression. The whole stream is one compiled
``lax.scan``: the side-by-side with Vowpal Wabbit's ``--cb_explore_adf --squarecb`` is in
``benchmarks/bandit_vw.py``.

Rewards are given as a table ``[T, K]`` of what every action would have paid in that round (a
simulator knows it); only the chosen entry is revealed to the learner.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 2))
    >>> table = np.stack([x[:, 0] > 0, x[:, 0] <= 0], axis=1).astype(np.float32)
    >>> out = squarecb_stream(x, table, seed=0)
    >>> float(out["reward"][-1000:].mean()) > 0.9
    True
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.errors import PolicyfitError


@partial(jax.jit, static_argnames=("gamma_exponent",))
def _scan(x, table, mask, key, gamma_scale, gamma_exponent, l2):
    t_total, d = x.shape
    k = table.shape[1]
    phi = jnp.concatenate([x, jnp.ones((t_total, 1), x.dtype)], axis=1)
    p_dim = d + 1
    a_inv = jnp.broadcast_to(jnp.eye(p_dim, dtype=x.dtype) / l2, (k, p_dim, p_dim))
    b = jnp.zeros((k, p_dim), x.dtype)
    theta = jnp.zeros((k, p_dim), x.dtype)
    keys = jax.random.split(key, t_total)

    def step(carry, inp):
        a_inv, b, theta, t = carry
        z, r_all, m, kk = inp
        f = theta @ z
        n_avail = m.sum()
        best = jnp.argmax(jnp.where(m, f, -jnp.inf))
        gamma = gamma_scale * jnp.power(t, gamma_exponent)
        p = jnp.where(m, 1.0 / (n_avail + gamma * (f[best] - f)), 0.0)
        p = p.at[best].set(0.0)
        p = p.at[best].set(1.0 - p.sum())
        a = jax.random.choice(kk, k, p=p)
        r = r_all[a]
        ai = a_inv[a]
        v = ai @ z
        ai_new = ai - jnp.outer(v, v) / (1.0 + z @ v)
        b_new = b[a] + r * z
        a_inv = a_inv.at[a].set(ai_new)
        b = b.at[a].set(b_new)
        theta = theta.at[a].set(ai_new @ b_new)
        return (a_inv, b, theta, t + 1.0), (a, p[a], r)

    init = (a_inv, b, theta, jnp.asarray(0.0, x.dtype))
    (_, _, theta, _), (actions, pscores, rewards) = jax.lax.scan(
        step, init, (phi, table, mask, keys)
    )
    return actions, pscores, rewards, theta


def squarecb_stream(
    context: np.ndarray,
    reward_table: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    gamma_scale: float = 10.0,
    gamma_exponent: float = 0.5,
    l2: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Run SquareCB over the stream; returns ``action``, ``pscore``, ``reward`` per round and the
    final coefficients ``theta [K, d + 1]``."""
    x = np.asarray(context, dtype=np.float32)
    table = np.asarray(reward_table, dtype=np.float32)
    if x.ndim != 2 or table.ndim != 2 or len(x) != len(table):
        raise PolicyfitError(
            f"context [T, d] and reward table [T, K] must agree, got {x.shape} and {table.shape}",
            field="stream",
        )
    mask = np.ones(table.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != table.shape or not mask.any(axis=1).all():
        raise PolicyfitError("mask must be [T, K] with an available action per round", field="mask")
    actions, pscores, rewards, theta = _scan(
        x,
        table,
        mask,
        jax.random.PRNGKey(seed),
        np.float32(gamma_scale),
        float(gamma_exponent),
        np.float32(l2),
    )
    return {
        "action": np.asarray(actions),
        "pscore": np.asarray(pscores),
        "reward": np.asarray(rewards),
        "theta": np.asarray(theta),
    }


def falcon_stream(
    context: np.ndarray,
    reward_table: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    l2: float = 1.0,
    c: float = 1 / 30,
    n_functions: float = 1e6,
    delta: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """FALCON (Simchi-Levi & Xu 2021) over the stream: epochs end at ``2, 4, 8, ...`` rounds; at
    the start of epoch ``m`` the ridge oracle is refit on epoch ``m - 1``'s data only and IGW plays
    with ``gamma_m`` (:func:`~policyfit.bandit.explore.falcon_gamma`) for the whole epoch — the
    batched, offline-oracle counterpart of SquareCB (one oracle call per epoch, ``O(log T)`` in all).
    ``c = 1/30`` is the paper's constant for its regret bound; in practice it explores almost
    uniformly for a long time, so ``benchmarks/bandit_vw.py`` also runs ``c = 10``.
    Returns ``action``, ``pscore``, ``reward`` per round and the epoch ends."""
    from policyfit.bandit import explore
    from policyfit.bandit.oracle import RidgeOracle

    x = np.asarray(context, dtype=np.float64)
    table = np.asarray(reward_table, dtype=np.float64)
    t_total, k = table.shape
    mask = np.ones(table.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    rng = np.random.default_rng(seed)
    actions = np.zeros(t_total, np.int64)
    pscores = np.zeros(t_total)
    ends = explore.falcon_epochs(t_total)
    start, oracle, previous_epoch = 0, None, 0
    for end in ends:
        rows = slice(start, end)
        if oracle is None:
            probs = mask[rows] / mask[rows].sum(axis=1, keepdims=True)
        else:
            gamma = explore.falcon_gamma(k, previous_epoch, n_functions, delta, c)
            probs = explore.igw_probs(oracle.predict(x[rows]), gamma, mask[rows])
        a, p = explore.sample_actions(probs, rng)
        actions[rows], pscores[rows] = a, p
        r = table[rows][np.arange(end - start), a]
        oracle = RidgeOracle(k, x.shape[1], l2).fit(x[rows], a, r)  # this epoch's data only
        previous_epoch, start = end - start, end
    rewards = table[np.arange(t_total), actions]
    return {"action": actions, "pscore": pscores, "reward": rewards, "epochs": ends}
