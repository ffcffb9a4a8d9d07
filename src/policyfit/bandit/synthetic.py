"""Synthetic logged bandit feedback with known ground truth, with the knobs of OBP's
``SyntheticBanditDataset`` (obp 0.5.7, ``obp/dataset/synthetic.py``).

Generative process of :class:`SyntheticBanditDataset`, one round:

* context ``x ~ N(0, I_d)`` (``dim_context = d``);
* expected reward ``q(x, a)`` from a reward-function family (below), or, with
  ``reward_function=None``, a context-free ``q(a) ~ U(0, 1)`` drawn once;
* the logger ``pi_b(. | x) = softmax(beta * logits(x, .))`` with ``logits = q`` unless a
  ``behavior_policy_function`` is named; ``beta < 0`` gives a logger worse than uniform;
  ``n_deficient_actions = m > 0`` gives, in each round, ``m`` random actions probability zero
  (deficient support: no estimator can see them);
* ``a ~ pi_b(. | x)``; the reward ``r ~ Bernoulli(q(x, a))`` (``reward_type="binary"``) or
  ``N(q(x, a), reward_std^2)`` (``"continuous"``).

Reward-function families (OBP's names; ``x~``, ``a~`` are polynomial features of the context and
of the action's context, ``a~`` of the identity by default):
``q = x~' theta_x + a~' theta_a + x~' M a~`` with coefficients ``U(-1, 1)``, standardized over
contexts, times the degree, then a sigmoid for the ``logistic*`` families:

==============================  ======  ===============================================
name                            degree  features used
==============================  ======  ===============================================
``linear``, ``logistic``        1       all
``polynomial``, ``logistic_polynomial``  3   all
``sparse``, ``logistic_sparse``  4      a random 10% of the features
==============================  ======  ===============================================

Behavior-policy families: ``linear`` (degree 1) and ``polynomial`` (degree 3):
``logits = x~' M a~ + theta_a' a~`` with coefficients ``U(0, 1)``, standardized, times the degree.

Where this differs from OBP on purpose (the parity benchmark compares estimators on the same
inputs, not the generators' random draws):

* the functions are fixed once per ``random_state``: coefficients are drawn at construction and
  the standardization uses the mean and standard deviation over 10,000 reference contexts, so
  ``q(x, a)`` is one function for every batch; OBP standardizes each batch with its own statistics
  and, through an operator-precedence slip (``q - q.mean() / q.std()``), subtracts ``mean / std``
  instead of standardizing;
* draws come from a :class:`numpy.random.Generator`, not ``RandomState``.

Example:
    >>> gen = SyntheticBanditDataset(n_actions=4, dim_context=3, reward_function="logistic",
    ...                              beta=-2.0, random_state=0)
    >>> fb = gen.obtain_batch_bandit_feedback(1000)
    >>> fb.expected_reward.shape, fb.pi_b.shape
    ((1000, 4), (1000, 4, 1))
    >>> pi_e = action_dist_from_scores(fb.expected_reward, "epsilon_greedy", epsilon=0.1)
    >>> 0.0 < ground_truth_policy_value(fb, pi_e) < 1.0
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policyfit.bandit.feedback import BanditFeedback
from policyfit.errors import ConfigError

REWARD_FUNCTIONS: dict[str, tuple[int, float, bool]] = {
    # name: (polynomial degree, share of features used, sigmoid)
    "linear": (1, 1.0, False),
    "polynomial": (3, 1.0, False),
    "sparse": (4, 0.1, False),
    "logistic": (1, 1.0, True),
    "logistic_polynomial": (3, 1.0, True),
    "logistic_sparse": (4, 0.1, True),
}
BEHAVIOR_POLICY_FUNCTIONS: dict[str, int] = {"linear": 1, "polynomial": 3}
REWARD_TYPES = ("binary", "continuous")
ACTION_DIST_KINDS = ("greedy", "epsilon_greedy", "softmax", "uniform")
REFERENCE_CONTEXTS = 10_000  # contexts over which the functions are standardized
MAX_FEATURE_PRODUCT = 20_000_000  # context features x action features (memory guard)

FunctionOfContext = Callable[[np.ndarray], np.ndarray]


def polynomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    """``[n, m]`` monomials of the columns of ``x`` up to ``degree``, the constant 1 first, in the
    order of scikit-learn's ``PolynomialFeatures(degree)``: by degree, then lexicographically."""
    x = np.asarray(x, dtype=np.float64)
    columns = [np.ones(x.shape[0])]
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(x.shape[1]), d):
            columns.append(np.prod(x[:, list(combo)], axis=1))
    return np.stack(columns, axis=1)


def n_polynomial_features(dim: int, degree: int) -> int:
    """How many columns :func:`polynomial_features` gives for ``dim`` inputs."""
    from math import comb

    return comb(dim + degree, degree)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x, 0.0)) / (1.0 + np.exp(-np.abs(x)))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - np.max(logits, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class SyntheticBanditDataset:
    """A synthetic contextual bandit with a logging policy and known ``q(x, a)``.

    Args (OBP's names and defaults):
        n_actions: number of actions ``K >= 2``.
        dim_context: context dimension ``d >= 1``.
        reward_type: ``"binary"`` (Bernoulli rewards; needs ``q`` in [0, 1]: a ``logistic*``
            family or ``None``) or ``"continuous"`` (Gaussian noise of ``reward_std``).
        reward_function: a family name of :data:`REWARD_FUNCTIONS`, a callable
            ``f(context [n, d]) -> q [n, K]``, or None for a context-free ``q ~ U(0, 1)``.
        reward_std: noise of continuous rewards.
        action_context: ``[K, d_a]`` features of the actions (default: the identity).
        behavior_policy_function: a name of :data:`BEHAVIOR_POLICY_FUNCTIONS`, a callable
            ``f(context) -> logits [n, K]``, or None (logits = ``q``).
        beta: inverse temperature of the logger's softmax (negative: a bad logger).
        n_deficient_actions: actions with zero logging probability in each round (< K).
        random_state: the seed; the same seed gives the same functions and the same batches.
    """

    n_actions: int
    dim_context: int = 1
    reward_type: str = "binary"
    reward_function: str | FunctionOfContext | None = None
    reward_std: float = 1.0
    action_context: np.ndarray | None = None
    behavior_policy_function: str | FunctionOfContext | None = None
    beta: float = 1.0
    n_deficient_actions: int = 0
    random_state: int = 12345
    _rng: np.random.Generator = field(init=False, repr=False)
    _q: FunctionOfContext = field(init=False, repr=False)
    _logits: FunctionOfContext | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_knobs()
        if self.action_context is None:
            self.action_context = np.eye(self.n_actions)
        self.action_context = np.asarray(self.action_context, dtype=np.float64)
        if self.action_context.ndim != 2 or self.action_context.shape[0] != self.n_actions:
            raise ConfigError(
                f"must have shape [n_actions, d_a] = [{self.n_actions}, ...], got "
                f"{self.action_context.shape}",
                path="SyntheticBanditDataset",
                field="action_context",
            )
        coef_seed, ref_seed, policy_seed, data_seed = np.random.SeedSequence(
            self.random_state
        ).spawn(4)
        reference = np.random.default_rng(ref_seed).normal(
            size=(REFERENCE_CONTEXTS, self.dim_context)
        )
        self._q = self._reward_function(np.random.default_rng(coef_seed), reference)
        self._logits = self._behavior_function(np.random.default_rng(policy_seed), reference)
        self._rng = np.random.default_rng(data_seed)

    # ------------------------------------------------------------------ setup
    def _check_knobs(self) -> None:
        where = "SyntheticBanditDataset"
        if int(self.n_actions) != self.n_actions or self.n_actions < 2:
            raise ConfigError("must be an integer >= 2", path=where, field="n_actions")
        if int(self.dim_context) != self.dim_context or self.dim_context < 1:
            raise ConfigError("must be an integer >= 1", path=where, field="dim_context")
        if self.reward_type not in REWARD_TYPES:
            raise ConfigError(
                f"unknown reward type {self.reward_type!r}; choose binary or continuous",
                path=where,
                field="reward_type",
            )
        name = self.reward_function
        if isinstance(name, str) and name not in REWARD_FUNCTIONS:
            raise ConfigError(
                f"unknown reward function {name!r}; choose one of {', '.join(REWARD_FUNCTIONS)}",
                path=where,
                field="reward_function",
            )
        if self.reward_type == "binary" and isinstance(name, str) and not REWARD_FUNCTIONS[name][2]:
            raise ConfigError(
                f"binary rewards need q(x, a) in [0, 1]: use a logistic family instead of {name!r}, "
                "or reward_type='continuous'",
                path=where,
                field="reward_function",
            )
        policy = self.behavior_policy_function
        if isinstance(policy, str) and policy not in BEHAVIOR_POLICY_FUNCTIONS:
            raise ConfigError(
                f"unknown behavior policy function {policy!r}; choose one of "
                f"{', '.join(BEHAVIOR_POLICY_FUNCTIONS)}",
                path=where,
                field="behavior_policy_function",
            )
        if not 0 <= self.n_deficient_actions < self.n_actions:
            raise ConfigError(
                f"must lie in [0, n_actions) = [0, {self.n_actions}) so that one action is left",
                path=where,
                field="n_deficient_actions",
            )
        if not np.isfinite(self.beta):
            raise ConfigError("must be a finite number", path=where, field="beta")
        if not self.reward_std >= 0:
            raise ConfigError("must be >= 0", path=where, field="reward_std")

    def _features(self, degree: int) -> tuple[int, np.ndarray]:
        """(number of context features, action features ``[K, m_a]``) for ``degree``."""
        m_x = n_polynomial_features(self.dim_context, degree)
        m_a = n_polynomial_features(self.action_context.shape[1], degree)
        if m_x * m_a > MAX_FEATURE_PRODUCT:
            raise ConfigError(
                f"degree-{degree} features of the context ({m_x}) and the action context ({m_a}) "
                "are too many; use a smaller dim_context, fewer action features or a lower degree",
                path="SyntheticBanditDataset",
                field="reward_function",
            )
        return m_x, polynomial_features(self.action_context, degree)

    def _reward_function(
        self, rng: np.random.Generator, reference: np.ndarray
    ) -> FunctionOfContext:
        spec = self.reward_function
        if spec is None:
            q = rng.uniform(size=self.n_actions)
            return lambda context: np.tile(q, (np.asarray(context).shape[0], 1))
        if callable(spec):
            return spec
        degree, share, logistic = REWARD_FUNCTIONS[spec]
        m_x, action_feats = self._features(degree)
        m_a = action_feats.shape[1]
        cols_x = np.arange(m_x)
        cols_a = np.arange(m_a)
        if share < 1.0:
            cols_x = np.sort(rng.choice(m_x, max(int(m_x * share), 1), replace=False))
            cols_a = np.sort(rng.choice(m_a, max(int(m_a * share), 1), replace=False))
        theta_x = rng.uniform(-1, 1, size=cols_x.size)
        theta_a = rng.uniform(-1, 1, size=cols_a.size)
        m = rng.uniform(-1, 1, size=(cols_x.size, cols_a.size))
        feats_a = action_feats[:, cols_a]

        def raw(context: np.ndarray) -> np.ndarray:
            feats_x = polynomial_features(context, degree)[:, cols_x]
            return (
                (feats_x @ theta_x)[:, None]
                + (feats_a @ theta_a)[None, :]
                + feats_x @ m @ feats_a.T
            )

        ref = raw(reference)
        mean, std = float(ref.mean()), float(ref.std()) or 1.0

        def q(context: np.ndarray) -> np.ndarray:
            z = degree * (raw(context) - mean) / std
            return sigmoid(z) if logistic else z

        return q

    def _behavior_function(
        self, rng: np.random.Generator, reference: np.ndarray
    ) -> FunctionOfContext | None:
        spec = self.behavior_policy_function
        if spec is None or callable(spec):
            return spec
        degree = BEHAVIOR_POLICY_FUNCTIONS[spec]
        m_x, action_feats = self._features(degree)
        theta_a = rng.uniform(size=action_feats.shape[1])
        m = rng.uniform(size=(m_x, action_feats.shape[1]))

        def raw(context: np.ndarray) -> np.ndarray:
            feats_x = polynomial_features(context, degree)
            return feats_x @ m @ action_feats.T + (action_feats @ theta_a)[None, :]

        ref = raw(reference)
        mean, std = float(ref.mean()), float(ref.std()) or 1.0
        return lambda context: degree * (raw(context) - mean) / std

    # ------------------------------------------------------------------ the model
    def expected_reward(self, context: np.ndarray) -> np.ndarray:
        """``q(x, a)`` for each row of ``context``: ``[n, K]``."""
        q = np.asarray(self._q(np.asarray(context, dtype=np.float64)), dtype=np.float64)
        if q.shape != (np.asarray(context).shape[0], self.n_actions):
            raise ConfigError(
                f"returned shape {q.shape}; expected [n, n_actions]",
                path="SyntheticBanditDataset",
                field="reward_function",
            )
        return q

    def behavior_policy(
        self, context: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The logger's ``pi_b(a | x)``: ``[n, K]``; deficient actions are drawn with ``rng``
        (default: the generator's own stream)."""
        context = np.asarray(context, dtype=np.float64)
        logits = self.expected_reward(context) if self._logits is None else self._logits(context)
        logits = self.beta * np.asarray(logits, dtype=np.float64)
        if self.n_deficient_actions == 0:
            return softmax(logits)
        rng = self._rng if rng is None else rng
        n = context.shape[0]
        keep = self.n_actions - self.n_deficient_actions
        order = np.argsort(rng.gumbel(size=(n, self.n_actions)), axis=1)[:, ::-1]
        masked = np.full_like(logits, -np.inf)
        rows = np.arange(n)[:, None]
        masked[rows, order[:, :keep]] = logits[rows, order[:, :keep]]
        return softmax(masked)

    def obtain_batch_bandit_feedback(self, n_rounds: int) -> BanditFeedback:
        """A fresh batch of ``n_rounds`` logged rounds (OBP's method name), with
        ``expected_reward`` and ``pi_b``; successive calls continue the random stream."""
        if int(n_rounds) != n_rounds or n_rounds < 1:
            raise ConfigError(
                "must be an integer >= 1", path="SyntheticBanditDataset", field="n_rounds"
            )
        n = int(n_rounds)
        rng = self._rng
        context = rng.normal(size=(n, self.dim_context))
        q = self.expected_reward(context)
        pi_b = self.behavior_policy(context, rng)
        cum = np.cumsum(pi_b, axis=1)
        u = rng.uniform(size=(n, 1)) * cum[:, -1:]
        action = np.minimum((cum <= u).sum(axis=1), self.n_actions - 1)
        # never pick a zero-probability action because of rounding at the top of the cumsum
        zero = pi_b[np.arange(n), action] <= 0
        if zero.any():
            action[zero] = np.argmax(pi_b[zero], axis=1)
        q_factual = q[np.arange(n), action]
        if self.reward_type == "binary":
            reward = rng.binomial(1, np.clip(q_factual, 0.0, 1.0)).astype(np.float64)
        else:
            reward = rng.normal(q_factual, self.reward_std)
        return BanditFeedback(
            n_rounds=n,
            n_actions=self.n_actions,
            context=context,
            action_context=self.action_context,
            action=action,
            position=np.zeros(n, dtype=np.int64),
            reward=reward,
            expected_reward=q,
            pi_b=pi_b[:, :, None],
            pscore=pi_b[np.arange(n), action],
            source=f"synthetic(seed={self.random_state})",
        )


# ----------------------------------------------------------------------------- target policies
def action_dist_from_scores(
    scores: np.ndarray,
    kind: str = "greedy",
    *,
    epsilon: float = 0.1,
    beta: float = 1.0,
) -> np.ndarray:
    """A target policy's ``action_dist`` ``[n, K, 1]`` from scores ``[n, K]`` (e.g. ``q`` or a
    model's predictions): ``greedy`` (argmax, ties to the first), ``epsilon_greedy`` (greedy with
    probability ``1 - epsilon``, else uniform), ``softmax`` (``softmax(beta * scores)``) or
    ``uniform``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ConfigError(
            f"has shape {scores.shape}; expected [n, K]", path="action_dist", field="scores"
        )
    n, k = scores.shape
    if kind not in ACTION_DIST_KINDS:
        raise ConfigError(
            f"unknown kind {kind!r}; choose one of {', '.join(ACTION_DIST_KINDS)}",
            path="action_dist",
            field="kind",
        )
    if kind == "softmax":
        return softmax(beta * scores)[:, :, None]
    uniform = np.full((n, k), 1.0 / k)
    if kind == "uniform":
        return uniform[:, :, None]
    greedy = np.zeros((n, k))
    greedy[np.arange(n), np.argmax(scores, axis=1)] = 1.0
    if kind == "greedy":
        return greedy[:, :, None]
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError("must lie in [0, 1]", path="action_dist", field="epsilon")
    return ((1.0 - epsilon) * greedy + epsilon * uniform)[:, :, None]


def ground_truth_policy_value(
    feedback: BanditFeedback | np.ndarray, action_dist: np.ndarray
) -> float:
    """The value of ``action_dist`` on the logged contexts, ``mean_i sum_a q(x_i, a) pi(a | x_i)``
    (slot 0), from the feedback's ``expected_reward`` (or an ``[n, K]`` array of it). This is the
    quantity OBP's ``calc_ground_truth_policy_value`` returns and the estimators target."""
    q = feedback.expected_reward if isinstance(feedback, BanditFeedback) else feedback
    if q is None:
        raise ConfigError(
            "the feedback has no expected_reward (only synthetic feedback knows the truth)",
            path=getattr(feedback, "source", "<feedback>"),
            field="expected_reward",
        )
    q = np.asarray(q, dtype=np.float64)
    pi = np.asarray(action_dist, dtype=np.float64)
    if pi.ndim != 3 or pi.shape[:2] != q.shape:
        raise ConfigError(
            f"has shape {pi.shape}; expected [n, K, len_list] with [n, K] = {list(q.shape)}",
            path="action_dist",
            field="action_dist",
        )
    weights = pi[:, :, 0]
    return float(np.mean(np.sum(q * weights, axis=1) / np.sum(weights, axis=1)))


def make_synthetic(n_rounds: int, **knobs: Any) -> BanditFeedback:
    """One batch of :class:`SyntheticBanditDataset` ``(**knobs)``."""
    return SyntheticBanditDataset(**knobs).obtain_batch_bandit_feedback(n_rounds)
