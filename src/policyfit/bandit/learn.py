"""Off-policy policy learning from logged bandit feedback.

Three learners, each returning a :class:`LinearPolicy` (scores ``phi(x) @ theta.T``, one row of
``theta`` per action) that acts greedily by default:

* ``regression`` — the greedy regression-oracle policy: ridge per action
  (:class:`~policyfit.bandit.oracle.RidgeOracle`), optionally with importance weights
  ``1 / pscore`` (``weighting="ipw"``) or class-balanced weights (``weighting="balanced"``: the
  positive and the non-positive rewards carry equal total weight);
* ``ipw`` — IPW policy learning as OBP's ``IPWLearner`` does it: a softmax-linear policy fit by
  weighted multinomial logistic regression of the logged action with weights ``r / pscore``
  (maximizes a surrogate of the IPW value), L-BFGS with an L2 penalty;
* ``dr`` — DR policy learning: doubly robust pseudo-rewards
  ``G[i, a] = q(x_i, a) + 1{a = a_i} (r_i - q(x_i, a_i)) / pscore_i`` with a cross-fitted ``q``,
  regressed per action; the policy takes the argmax.

A policy gives OBP's ``action_dist`` (``[n, K, 1]``) for off-policy evaluation, samples actions
with their propensities, honours action masks, and saves to one ``.npz``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(5000, 2)); a = rng.integers(0, 3, 5000)
    >>> r = (a == (x[:, 0] > 0).astype(int)).astype(float)          # action 0 or 1 is right
    >>> policy = learn_policy(x, a, r, np.full(5000, 1 / 3), n_actions=3, learner="dr")
    >>> policy.act_greedy(np.array([[2.0, 0.0], [-2.0, 0.0]])).tolist()
    [1, 0]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from policyfit.bandit import explore
from policyfit.bandit.oracle import RidgeOracle, cross_fit_predict, feature_map
from policyfit.common.files import atomic_write
from policyfit.errors import PolicyfitError

LEARNERS = ("regression", "ipw", "dr")
RULES = ("greedy", "epsilon", "igw", "softmax")
POLICY_FORMAT = "policyfit-bandit-policy/1"


@dataclass
class LinearPolicy:
    """Scores ``phi(x) @ theta.T`` and an action rule (``greedy``, ``epsilon``, ``igw``, ``softmax``
    with ``param`` = epsilon, gamma or temperature)."""

    theta: np.ndarray
    features: str = "linear"
    rule: str = "greedy"
    param: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def n_actions(self) -> int:
        return int(self.theta.shape[0])

    def scores(self, context: np.ndarray) -> np.ndarray:
        phi = feature_map(context, self.features)
        if phi.shape[1] != self.theta.shape[1]:
            raise PolicyfitError(
                f"context has {np.asarray(context).shape[1]} features; the policy was learned "
                f"on another dimension",
                field="context",
            )
        return phi @ self.theta.T

    def probs(self, context: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Action probabilities ``[n, K]`` under the policy's rule."""
        f = self.scores(context)
        if self.rule == "greedy":
            return explore.greedy_probs(f, mask)
        if self.rule == "epsilon":
            return explore.epsilon_greedy_probs(f, self.param, mask)
        if self.rule == "igw":
            return explore.igw_probs(f, self.param, mask)
        if self.rule == "softmax":
            z = f / max(self.param, 1e-12)
            if mask is not None:
                z = np.where(mask, z, -np.inf)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        raise PolicyfitError(f"unknown rule {self.rule!r}; one of {RULES}", field="rule")

    def action_dist(self, context: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """OBP's ``action_dist``: ``[n, K, 1]``."""
        return self.probs(context, mask)[:, :, None]

    def act(
        self, context: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sampled actions and their propensities."""
        return explore.sample_actions(self.probs(context, mask), rng)

    def act_greedy(self, context: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return explore.best_actions(self.scores(context), mask)

    def with_rule(self, rule: str, param: float = 0.0) -> LinearPolicy:
        if rule not in RULES:
            raise PolicyfitError(f"unknown rule {rule!r}; one of {RULES}", field="rule")
        return LinearPolicy(self.theta, self.features, rule, float(param), dict(self.info))

    def save(self, path: str | Path) -> Path:
        """One ``.npz``: ``theta`` and a JSON header (format, features, rule, info)."""
        meta = {
            "format": POLICY_FORMAT,
            "features": self.features,
            "rule": self.rule,
            "param": self.param,
            "info": self.info,
        }
        path = Path(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
                np.savez(fh, theta=self.theta, meta=np.array(json.dumps(meta)))

        atomic_write(path, write)
        return path


def load_bandit_policy(path: str | Path) -> LinearPolicy:
    """A policy saved by :meth:`LinearPolicy.save`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            theta, meta = np.asarray(z["theta"], dtype=np.float64), json.loads(str(z["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise PolicyfitError(
            f"not a policyfit bandit policy ({type(exc).__name__}: {exc}); write one with "
            "`policyfit bandit learn LOGS --out FILE.npz`".replace("\n", " "),
            path=str(path),
            field="policy",
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != POLICY_FORMAT or theta.ndim != 2:
        raise PolicyfitError(
            f"expected format {POLICY_FORMAT}; write one with `policyfit bandit learn`",
            path=str(path),
            field="policy",
        )
    return LinearPolicy(
        theta, meta["features"], meta["rule"], float(meta["param"]), meta.get("info", {})
    )


# --------------------------------------------------------------------------- learners
def sample_weights(reward: np.ndarray, pscore: np.ndarray | None, weighting: str) -> np.ndarray:
    """Row weights for oracle refits: ``none``, ``ipw`` (1/pscore, mean 1) or ``balanced``."""
    reward = np.asarray(reward, dtype=np.float64)
    if weighting == "none":
        return np.ones(len(reward))
    if weighting == "ipw":
        if pscore is None:
            raise PolicyfitError("ipw weighting needs pscore", field="pscore")
        w = 1.0 / np.asarray(pscore, dtype=np.float64)
        return w / w.mean()
    if weighting == "balanced":
        positive = reward > 0
        n_pos, n = positive.sum(), len(reward)
        if n_pos in (0, n):
            return np.ones(n)
        return np.where(positive, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    raise PolicyfitError(
        f"unknown weighting {weighting!r}; one of none, ipw, balanced", field="weighting"
    )


def _ipw_softmax(phi, action, reward, pscore, n_actions, l2) -> np.ndarray:
    from scipy.optimize import minimize

    w = reward / pscore
    n, p = phi.shape

    def loss_grad(flat):
        theta = flat.reshape(n_actions, p)
        z = phi @ theta.T
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -np.mean(w * logp[np.arange(n), action]) + l2 * np.sum(theta**2)
        probs = np.exp(logp)
        onehot = np.zeros_like(probs)
        onehot[np.arange(n), action] = 1.0
        grad = -((w[:, None] * (onehot - probs)).T @ phi) / n + 2 * l2 * theta
        return loss, grad.ravel()

    result = minimize(
        loss_grad, np.zeros(n_actions * p), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    )
    return result.x.reshape(n_actions, p)


def learn_policy(
    context: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    pscore: np.ndarray | None,
    n_actions: int,
    learner: str = "regression",
    *,
    weighting: str = "none",
    l2: float = 1.0,
    features: str = "linear",
    n_folds: int = 2,
    seed: int = 0,
) -> LinearPolicy:
    """Learn a greedy :class:`LinearPolicy` from logged ``(context, action, reward, pscore)``.

    ``learner``: ``regression`` (with ``weighting``), ``ipw`` or ``dr`` (module docstring).
    """
    context = np.asarray(context, dtype=np.float64)
    action = np.asarray(action, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    dim = context.shape[1]
    info = {"learner": learner, "n_rounds": len(action), "l2": l2}
    if learner == "regression":
        w = sample_weights(reward, pscore, weighting)
        oracle = RidgeOracle(n_actions, dim, l2, features).fit(context, action, reward, w)
        return LinearPolicy(oracle.theta, features, info={**info, "weighting": weighting})
    if pscore is None:
        raise PolicyfitError(f"the {learner} learner needs pscore", field="pscore")
    pscore = np.asarray(pscore, dtype=np.float64)
    if learner == "ipw":
        theta = _ipw_softmax(
            feature_map(context, features), action, reward, pscore, n_actions, l2 / len(action)
        )
        return LinearPolicy(theta, features, info=info)
    if learner == "dr":
        q = cross_fit_predict(context, action, reward, n_actions, n_folds, l2, features, seed)
        rows = np.arange(len(action))
        pseudo = q.copy()
        pseudo[rows, action] += (reward - q[rows, action]) / pscore
        phi = feature_map(context, features)
        gram = phi.T @ phi + l2 * np.eye(phi.shape[1])
        theta = np.linalg.solve(gram, phi.T @ pseudo).T
        return LinearPolicy(theta, features, info={**info, "n_folds": n_folds})
    raise PolicyfitError(f"unknown learner {learner!r}; one of {LEARNERS}", field="learner")
