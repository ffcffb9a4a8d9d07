"""Exploration: action probabilities from predicted rewards, with action masks.

Every rule maps predicted rewards ``f [n, K]`` (higher is better) and an optional boolean
``mask [n, K]`` (the actions available in each round — dynamic action sets) to probabilities
``[n, K]`` that are zero on masked actions and sum to one over the others:

* :func:`greedy_probs` — all mass on the best available action (ties: the lowest index);
* :func:`epsilon_greedy_probs` — ``1 - eps`` on the best, ``eps`` spread uniformly over the
  available actions;
* :func:`igw_probs` — inverse-gap weighting (Abe & Long 1999; SquareCB, Foster & Rakhlin 2020):
  ``p(a) = 1 / (K + gamma (f(a*) - f(a)))`` for ``a != a*`` and the rest on ``a*``, with ``K`` the
  number of *available* actions (as TF-Agents' FALCON policy does with masks). ``gamma = 0`` is
  uniform play, ``gamma -> inf`` greedy; every action keeps probability at least
  ``1 / (K + gamma * max_gap)``, so importance weights of IGW logs are bounded.

and two schedules for ``gamma``: :func:`squarecb_gamma` (Vowpal Wabbit's
``--squarecb``: ``gamma_scale * t ** gamma_exponent``, defaults 10 and 0.5, ``t`` the examples
learned so far) and :func:`falcon_gamma` (FALCON's epoch rule, Simchi-Levi & Xu 2021).
:func:`sample_actions` draws one action per round and returns its propensity.

Example:
    >>> import numpy as np
    >>> f = np.array([[0.9, 0.5, 0.1]])
    >>> igw_probs(f, gamma=10.0).round(4).tolist()
    [[0.7662, 0.1429, 0.0909]]
    >>> epsilon_greedy_probs(f, 0.3, mask=np.array([[False, True, True]])).tolist()
    [[0.0, 0.85, 0.15]]
"""

from __future__ import annotations

import math

import numpy as np

from policyfit.errors import PolicyfitError


def _prepare(f: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] < 1:
        raise PolicyfitError(f"predicted rewards must be [n, K], got {f.shape}", field="f")
    if mask is None:
        mask = np.ones(f.shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != f.shape:
        raise PolicyfitError(f"mask {mask.shape} does not match rewards {f.shape}", field="mask")
    if not mask.any(axis=1).all():
        raise PolicyfitError("every round needs at least one available action", field="mask")
    return f, mask


def best_actions(f: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The best available action per round (ties: the lowest index)."""
    f, mask = _prepare(f, mask)
    return np.argmax(np.where(mask, f, -np.inf), axis=1)


def greedy_probs(f: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One-hot on the best available action."""
    f, mask = _prepare(f, mask)
    out = np.zeros_like(f)
    out[np.arange(len(f)), best_actions(f, mask)] = 1.0
    return out


def epsilon_greedy_probs(
    f: np.ndarray, epsilon: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """``1 - epsilon`` on the best available action plus ``epsilon`` uniform over the available."""
    if not 0.0 <= epsilon <= 1.0:
        raise PolicyfitError(f"must be in [0, 1], got {epsilon}", field="epsilon")
    f, mask = _prepare(f, mask)
    uniform = mask / mask.sum(axis=1, keepdims=True)
    return (1.0 - epsilon) * greedy_probs(f, mask) + epsilon * uniform


def igw_probs(f: np.ndarray, gamma: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Inverse-gap weighting over the available actions (see the module docstring)."""
    if not gamma >= 0.0:
        raise PolicyfitError(f"must be >= 0, got {gamma}", field="gamma")
    f, mask = _prepare(f, mask)
    k = mask.sum(axis=1, keepdims=True).astype(np.float64)
    best = best_actions(f, mask)
    rows = np.arange(len(f))
    gap = f[rows, best][:, None] - f
    p = np.where(mask, 1.0 / (k + gamma * gap), 0.0)
    p[rows, best] = 0.0
    p[rows, best] = 1.0 - p.sum(axis=1)
    return p


def uniform_floor(probs: np.ndarray, floor: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Mix ``floor`` of uniform play over the available actions into ``probs``."""
    if not 0.0 <= floor <= 1.0:
        raise PolicyfitError(f"must be in [0, 1], got {floor}", field="floor")
    probs = np.asarray(probs, dtype=np.float64)
    mask = np.ones(probs.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return (1.0 - floor) * probs + floor * mask / mask.sum(axis=1, keepdims=True)


def squarecb_gamma(t: int, gamma_scale: float = 10.0, gamma_exponent: float = 0.5) -> float:
    """SquareCB's learning-rate schedule as Vowpal Wabbit runs it: ``scale * t ** exponent``."""
    return float(gamma_scale) * float(max(t, 0)) ** float(gamma_exponent)


def falcon_epochs(horizon: int) -> list[int]:
    """FALCON's epoch ends for unknown horizons, ``tau_m = 2 ** m``, cut at ``horizon``."""
    ends, m = [], 1
    while not ends or ends[-1] < horizon:
        ends.append(min(2**m, horizon))
        m += 1
    return ends


def falcon_gamma(
    n_actions: int, previous_epoch: int, n_functions: float = 1e6, delta: float = 0.05, c=1 / 30
) -> float:
    """FALCON's ``gamma_m = c * sqrt(K * tau_{m-1} / log(|F| * tau_{m-1} / delta))`` (finite class
    bound; ``c = 1/30`` as in the paper); 0 (uniform play) for the first epoch."""
    if previous_epoch <= 0:
        return 0.0
    return c * math.sqrt(
        n_actions * previous_epoch / math.log(n_functions * previous_epoch / delta)
    )


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One action per row of ``probs`` and its probability (the propensity to log)."""
    probs = np.asarray(probs, dtype=np.float64)
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    actions = (cum <= u[:, None]).sum(axis=1)
    actions = np.minimum(actions, probs.shape[1] - 1)
    return actions, probs[np.arange(len(probs)), actions]
