"""The reward model ``q^(x, a, k)`` that DM and the DR family need, fitted with K-fold
cross-fitting, in numpy (no scikit-learn).

:func:`fit_reward_model` returns ``estimated_rewards_by_reg_model`` ``[n, K, len_list]`` for the
logged rounds, as OBP's ``RegressionModel.fit_predict`` does: one model per position (slot), and
with ``n_folds > 1`` each round's prediction comes from a model fitted on the other folds
(cross-fitting; folds from a seeded shuffle). Models:

* ``ridge``: L2-regularized least squares (``l2`` on every weight but the intercept);
* ``logistic``: L2-regularized logistic regression fitted by Newton's method (rewards in [0, 1]);
* ``auto``: logistic when every reward is 0 or 1, ridge otherwise.

Features of a (context, action) pair: ``interaction`` (default) is ``[x, e_a, x (outer) e_a]``
with ``e_a`` the action's row of ``action_context`` (with the identity, one linear model per
action); ``concat`` is OBP's ``[x, e_a]`` (no interaction: the same context effect for every
action). Weights (``fit_method``, OBP's names): ``normal`` (none), ``iw``
(``pi_e(a_i | x_i) / pscore_i``) and ``mrdr`` (``pi_e (1 - pscore) / pscore^2``); the last two need
the target policy's ``action_dist``.

Example:
    >>> from policyfit.bandit.synthetic import SyntheticBanditDataset
    >>> fb = SyntheticBanditDataset(n_actions=3, dim_context=2, reward_function="logistic",
    ...                             random_state=0).obtain_batch_bandit_feedback(500)
    >>> q_hat = fit_reward_model(fb, n_folds=2, random_state=0)
    >>> q_hat.shape
    (500, 3, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policyfit.bandit.feedback import BanditFeedback, load_feedback
from policyfit.bandit.ope import check_action_dist
from policyfit.errors import ConfigError

MODELS = ("auto", "ridge", "logistic")
FEATURES = ("interaction", "concat")
FIT_METHODS = ("normal", "iw", "mrdr")
NEWTON_STEPS = 50
NEWTON_TOL = 1e-8


def pair_features(
    context: np.ndarray, action_context: np.ndarray, action: np.ndarray, kind: str
) -> np.ndarray:
    """``[n, m]`` features of the pairs ``(context[i], action[i])`` (see the module docstring)."""
    e = action_context[action]
    if kind == "concat":
        return np.concatenate([context, e], axis=1)
    inter = (context[:, :, None] * e[:, None, :]).reshape(context.shape[0], -1)
    return np.concatenate([context, e, inter], axis=1)


class _Linear:
    """Ridge or logistic regression on standardized features with an unpenalized intercept."""

    def __init__(self, kind: str, l2: float):
        self.kind = kind
        self.l2 = l2

    def fit(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> _Linear:
        self.mu = x.mean(axis=0)
        sd = x.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)
        z = np.concatenate([np.ones((x.shape[0], 1)), (x - self.mu) / self.sd], axis=1)
        penalty = np.full(z.shape[1], self.l2)
        penalty[0] = 0.0
        if self.kind == "ridge":
            a = z.T @ (z * weight[:, None]) + np.diag(penalty)
            self.coef = np.linalg.lstsq(a, z.T @ (weight * y), rcond=None)[0]
            return self
        coef = np.zeros(z.shape[1])
        mean_y = np.clip(np.average(y, weights=weight) if weight.sum() > 0 else 0.5, 1e-6, 1 - 1e-6)
        coef[0] = np.log(mean_y / (1 - mean_y))
        for _ in range(NEWTON_STEPS):
            p = _sigmoid(z @ coef)
            grad = z.T @ (weight * (p - y)) + penalty * coef
            hess = z.T @ (z * (weight * p * (1 - p))[:, None]) + np.diag(penalty + 1e-10)
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
            coef = coef - step
            if np.max(np.abs(step)) < NEWTON_TOL:
                break
        self.coef = coef
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mu) / self.sd
        out = self.coef[0] + z @ self.coef[1:]
        return _sigmoid(out) if self.kind == "logistic" else out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x, 0.0)) / (1.0 + np.exp(-np.abs(x)))


def _folds(n: int, n_folds: int, random_state: int | None) -> list[np.ndarray]:
    order = np.random.default_rng(random_state).permutation(n)
    return np.array_split(order, n_folds)


def _check_options(model: str, features: str, fit_method: str, n_folds: Any, l2: Any) -> None:
    for value, allowed, name in (
        (model, MODELS, "model"),
        (features, FEATURES, "features"),
        (fit_method, FIT_METHODS, "fit_method"),
    ):
        if value not in allowed:
            raise ConfigError(
                f"unknown {name} {value!r}; choose one of {', '.join(allowed)}",
                path="reward_model",
                field=name,
            )
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 1:
        raise ConfigError(
            f"must be an integer >= 1, got {n_folds!r}", path="reward_model", field="n_folds"
        )
    if not (isinstance(l2, int | float) and l2 >= 0):
        raise ConfigError(f"must be a number >= 0, got {l2!r}", path="reward_model", field="l2")


def fit_reward_model(
    feedback: BanditFeedback | Any,
    *,
    model: str = "auto",
    n_folds: int = 1,
    random_state: int | None = None,
    features: str = "interaction",
    fit_method: str = "normal",
    action_dist: np.ndarray | None = None,
    len_list: int | None = None,
    l2: float = 1.0,
) -> np.ndarray:
    """Cross-fitted ``estimated_rewards_by_reg_model`` ``[n, K, len_list]`` for the logged rounds.

    Args:
        feedback: the logs (anything :func:`~policyfit.bandit.feedback.load_feedback` takes).
        model: ``auto``, ``ridge`` or ``logistic``.
        n_folds: 1 fits once on all rounds (in-sample predictions); ``> 1`` cross-fits.
        random_state: seed of the fold assignment.
        features: ``interaction`` or ``concat`` (OBP's).
        fit_method: ``normal``, ``iw`` or ``mrdr`` (the last two need ``action_dist``).
        action_dist: the target policy ``[n, K, len_list]``, for ``iw``/``mrdr`` weights and
            for ``len_list``.
        len_list: slots to predict; default ``action_dist``'s, else the feedback's.
        l2: L2 penalty (on standardized features).
    """
    _check_options(model, features, fit_method, n_folds, l2)
    fb = load_feedback(feedback)
    if n_folds > fb.n_rounds:
        raise ConfigError(
            f"n_folds={n_folds} exceeds the {fb.n_rounds} rounds",
            path="reward_model",
            field="n_folds",
        )
    if model == "auto":
        model = "logistic" if np.isin(fb.reward, (0.0, 1.0)).all() else "ridge"
    if model == "logistic" and (fb.reward.min() < 0 or fb.reward.max() > 1):
        raise ConfigError(
            "logistic needs rewards in [0, 1]; use model='ridge'",
            path="reward_model",
            field="model",
        )
    if fit_method != "normal" and action_dist is None:
        raise ConfigError(
            f"fit_method={fit_method!r} needs the target policy's action_dist",
            path="reward_model",
            field="fit_method",
        )
    if action_dist is not None:
        action_dist = check_action_dist(action_dist, fb)
        len_list = action_dist.shape[2]
    slots = fb.len_list if len_list is None else int(len_list)
    weight = np.ones(fb.n_rounds)
    if fit_method != "normal":
        pi = action_dist[np.arange(fb.n_rounds), fb.action, fb.position]
        weight = pi / fb.pscore if fit_method == "iw" else pi * (1 - fb.pscore) / fb.pscore**2
    x_logged = pair_features(fb.context, fb.action_context, fb.action, features)
    q_hat = np.zeros((fb.n_rounds, fb.n_actions, slots))
    folds = [np.arange(fb.n_rounds)] if n_folds == 1 else _folds(fb.n_rounds, n_folds, random_state)
    for test in folds:
        train = (
            np.arange(fb.n_rounds) if n_folds == 1 else np.setdiff1d(np.arange(fb.n_rounds), test)
        )
        pooled = None
        for slot in range(slots):
            rows = train[fb.position[train] == slot]
            if rows.size == 0:
                if pooled is None:
                    pooled = _Linear(model, l2).fit(
                        x_logged[train], fb.reward[train], weight[train]
                    )
                fitted = pooled
            else:
                fitted = _Linear(model, l2).fit(x_logged[rows], fb.reward[rows], weight[rows])
            for a in range(fb.n_actions):
                x = pair_features(
                    fb.context[test], fb.action_context, np.full(test.size, a), features
                )
                q_hat[test, a, slot] = fitted.predict(x)
    return q_hat
