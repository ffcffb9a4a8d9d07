"""Regression oracles: per-action ridge regression of the reward on context features.

The oracle SquareCB and FALCON call is a square-loss regression ``f(x, a) ~ E[r | x, a]``. Here it
is one ridge regression per action on features ``phi(x)`` (``linear``: ``[x, 1]``; ``quadratic``:
``[x, x_i x_j (i <= j), 1]``), kept as sufficient statistics ``A_a = l2 I + sum w phi phi^T`` and
``b_a = sum w r phi``, so that

* a batch refit is exact and costs one ``p x p`` solve per action, whatever the number of rows;
* rows can be added later (:meth:`RidgeOracle.update`) — the online and the batched uses agree;
* sample weights express the retraining variants of :mod:`policyfit.bandit.simulate`
  (importance-weighted, class-balanced).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 3)); a = rng.integers(0, 2, 2000)
    >>> r = np.where(a == 1, x[:, 0], -x[:, 0]) + 0.5
    >>> oracle = RidgeOracle(n_actions=2, dim=3).fit(x, a, r)
    >>> oracle.predict(np.array([[1.0, 0.0, 0.0]])).round(2).tolist()
    [[-0.5, 1.5]]
"""

from __future__ import annotations

import numpy as np

from policyfit.errors import PolicyfitError

FEATURES = ("linear", "quadratic")


def feature_map(context: np.ndarray, kind: str = "linear") -> np.ndarray:
    """``phi(x)``: the context, optionally its pairwise products, and a constant 1."""
    x = np.asarray(context, dtype=np.float64)
    if x.ndim != 2:
        raise PolicyfitError(f"context must be [n, d], got {x.shape}", field="context")
    parts = [x]
    if kind == "quadratic":
        i, j = np.triu_indices(x.shape[1])
        parts.append(x[:, i] * x[:, j])
    elif kind != "linear":
        raise PolicyfitError(f"unknown features {kind!r}; one of {FEATURES}", field="features")
    parts.append(np.ones((len(x), 1)))
    return np.concatenate(parts, axis=1)


def n_features(dim: int, kind: str = "linear") -> int:
    return dim + 1 + (dim * (dim + 1) // 2 if kind == "quadratic" else 0)


class RidgeOracle:
    """One ridge regression per action; see the module docstring."""

    def __init__(self, n_actions: int, dim: int, l2: float = 1.0, features: str = "linear"):
        if n_actions < 1 or dim < 1 or l2 <= 0:
            raise PolicyfitError("need n_actions >= 1, dim >= 1, l2 > 0", field="oracle")
        self.n_actions, self.dim, self.l2, self.features = int(n_actions), int(dim), l2, features
        p = n_features(dim, features)
        self.A = np.broadcast_to(l2 * np.eye(p), (n_actions, p, p)).copy()
        self.b = np.zeros((n_actions, p))
        self.counts = np.zeros(n_actions)
        self._theta: np.ndarray | None = np.zeros((n_actions, p))

    def update(
        self,
        context: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> RidgeOracle:
        """Add rows ``(x, a, r)`` with optional sample weights."""
        phi = feature_map(context, self.features)
        action = np.asarray(action, dtype=np.int64)
        reward = np.asarray(reward, dtype=np.float64)
        w = np.ones(len(phi)) if weight is None else np.asarray(weight, dtype=np.float64)
        if not (len(action) == len(reward) == len(w) == len(phi)):
            raise PolicyfitError("context, action, reward, weight lengths differ", field="oracle")
        if len(action) and (action.min() < 0 or action.max() >= self.n_actions):
            raise PolicyfitError(f"actions outside [0, {self.n_actions})", field="action")
        for a in np.unique(action):
            rows = action == a
            pw = phi[rows] * w[rows, None]
            self.A[a] += pw.T @ phi[rows]
            self.b[a] += pw.T @ reward[rows]
            self.counts[a] += rows.sum()
        self._theta = None
        return self

    def fit(self, context, action, reward, weight=None) -> RidgeOracle:
        """Forget everything, then :meth:`update` with these rows."""
        fresh = RidgeOracle(self.n_actions, self.dim, self.l2, self.features)
        self.__dict__.update(fresh.__dict__)
        return self.update(context, action, reward, weight)

    @property
    def theta(self) -> np.ndarray:
        """Coefficients ``[K, p]`` (solved lazily after updates)."""
        if self._theta is None:
            self._theta = np.linalg.solve(self.A, self.b[..., None])[..., 0]
        return self._theta

    def predict(self, context: np.ndarray) -> np.ndarray:
        """Predicted rewards ``[n, K]``."""
        return feature_map(context, self.features) @ self.theta.T


def cross_fit_predict(
    context: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    n_folds: int = 2,
    l2: float = 1.0,
    features: str = "linear",
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions ``[n, K]``: each row's rewards come from a model not fit on it."""
    n = len(context)
    folds = np.random.default_rng(seed).permutation(n) % max(n_folds, 1)
    out = np.zeros((n, n_actions))
    dim = np.asarray(context).shape[1]
    for k in range(max(n_folds, 1)):
        test = folds == k
        train = ~test if n_folds > 1 else test
        oracle = RidgeOracle(n_actions, dim, l2, features)
        oracle.fit(context[train], action[train], reward[train])
        out[test] = oracle.predict(context[test])
    return out
