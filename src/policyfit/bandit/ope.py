"""Off-policy evaluation of a target policy from logged bandit feedback, with OBP's estimators.

The estimators, their names and their defaults are those of Open Bandit Pipeline 0.5.7
(``obp/ope/estimators.py``, checked line by line; ``benchmarks/obp_parity.py`` compares the numbers
with OBP itself). Notation: ``pi_e = action_dist`` ``[n, K, len_list]``, ``k_i = position_i``,
``w_i = pi_e(a_i | x_i, k_i) / pscore_i``, ``q^ = estimated_rewards_by_reg_model`` (same shape as
``action_dist``), ``q^_i = q^(x_i, a_i, k_i)`` and the direct-method term
``DM_i = sum_a pi_e(a | x_i, k_i) q^(x_i, a, k_i) / sum_a pi_e(a | x_i, k_i)``. Each estimate is the
mean over rounds of its round-wise value:

==============  ==========================================  ==================================
name            round-wise value                            ``lambda_`` (OBP's default)
==============  ==========================================  ==================================
``ipw``         ``min(w, lambda) r``                        clipping, ``inf``
``snipw``       ``w r / mean(w)``                           none
``dm``          ``DM_i``                                    none
``dr``          ``DM_i + min(w, lambda) (r - q^_i)``        clipping, ``inf``
``sndr``        ``DM_i + w (r - q^_i) / mean(w)``           none
``switch-dr``   ``DM_i + 1{w <= lambda} w (r - q^_i)``      switch threshold, ``inf``
``dr-os``       ``DM_i + lambda w / (w^2 + lambda) (r - q^_i)``  shrinkage, **0.0**
``sg-ipw``      ``w / (1 - lambda + lambda w) r``           in [0, 1], **0.0**
``sg-dr``       ``DM_i + w / (1 - lambda + lambda w) (r - q^_i)``  in [0, 1], **0.0**
==============  ==========================================  ==================================

OBP's defaults surprise in three places, kept here for parity: ``dr-os`` with its default
``lambda_=0`` shrinks every weight to 0 and *is* DM; ``sg-ipw``/``sg-dr`` with ``lambda_=0`` *are*
IPW/DR; and ``switch-dr`` with ``lambda_=inf`` is DR. Pass ``lambda_={"dr-os": 100, ...}`` to get
the estimators the papers describe. Where OBP divides 0 by 0 (``dr-os`` with ``lambda_=0``, or
``sg-*`` with ``lambda_=1``, at rounds whose ``w = 0``) and returns NaN, the shrunk weight here is
0, its limit.

Intervals (:func:`estimate_intervals`) are OBP's percentile bootstrap of the round-wise values:
``n_bootstrap_samples`` resamples of ``n`` rounds drawn with a ``numpy.random.RandomState``
``(random_state)``, the same resamples for every estimator, keys ``mean``,
``{100 (1 - alpha)}% CI (lower)`` and ``... (upper)``; with the same seed the numbers are OBP's.

Example:
    >>> import numpy as np
    >>> from policyfit.bandit.feedback import BanditFeedback
    >>> fb = BanditFeedback(context=np.zeros((4, 1)), action=[0, 1, 0, 1], reward=[1, 0, 0, 1],
    ...                     pscore=[0.5, 0.5, 0.5, 0.5], n_actions=2)
    >>> pi_e = np.tile([[[1.0], [0.0]]], (4, 1, 1))        # always action 0
    >>> estimate_policy_values(fb, pi_e, ["ipw", "snipw"])
    {'ipw': 0.5, 'snipw': 0.5}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from policyfit.bandit.feedback import BanditFeedback, load_feedback
from policyfit.errors import ConfigError, DatasetError

ESTIMATORS = ("ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "dr-os", "sg-ipw", "sg-dr")
MODEL_BASED = frozenset({"dm", "dr", "sndr", "switch-dr", "dr-os", "sg-dr"})
#: OBP 0.5.7's default ``lambda_`` of each estimator that has one.
DEFAULT_LAMBDA: dict[str, float] = {
    "ipw": math.inf,
    "dr": math.inf,
    "switch-dr": math.inf,
    "dr-os": 0.0,
    "sg-ipw": 0.0,
    "sg-dr": 0.0,
}
ACTION_DIST_TOLERANCE = 1e-5  # |sum_a pi_e(a) - 1| allowed (OBP uses np.allclose)
BOOTSTRAP_CHUNK = 5_000_000  # resampled indices held in memory at once


# ----------------------------------------------------------------------------- inputs
def as_3d(array: Any, name: str, source: str) -> np.ndarray:
    """``array`` as a finite float64 ``[n, K, len_list]`` array (``[n, K]`` gets ``len_list=1``)."""
    try:
        arr = np.asarray(array)
    except Exception as exc:  # ragged nested lists
        raise DatasetError(f"cannot be read as an array ({exc})", path=source, field=name) from None
    if arr.dtype.kind not in "biuf":
        raise DatasetError(
            f"has dtype {arr.dtype}; expected numbers [n, n_actions, len_list]",
            path=source,
            field=name,
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DatasetError(
            f"has shape {arr.shape}; expected [n, n_actions, len_list] (or [n, n_actions])",
            path=source,
            field=name,
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise DatasetError("contains NaN or infinite values", path=source, field=name)
    return arr


def check_action_dist(
    action_dist: Any, feedback: BanditFeedback, source: str = "action_dist"
) -> np.ndarray:
    """The target policy's probabilities checked against ``feedback``, as OBP's
    ``check_ope_inputs`` checks them: ``[n, K, len_list]``, probabilities that sum to 1 over the
    actions, a slot for every logged position. Returns float64 ``[n, K, len_list]``."""
    pi = as_3d(action_dist, "action_dist", source)
    n, k = feedback.n_rounds, feedback.n_actions
    if pi.shape[:2] != (n, k):
        raise DatasetError(
            f"has shape {pi.shape}; expected [n_rounds, n_actions, len_list] = [{n}, {k}, L] "
            f"to match the logs ({feedback.source})",
            path=source,
            field="action_dist",
        )
    if pi.min() < 0 or pi.max() > 1 + ACTION_DIST_TOLERANCE:
        raise DatasetError(
            "holds values outside [0, 1]; it must hold the target policy's probabilities",
            path=source,
            field="action_dist",
        )
    sums = pi.sum(axis=1)
    bad = np.abs(sums - 1.0) > ACTION_DIST_TOLERANCE
    if bad.any():
        row, slot = (int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"must sum to 1 over the actions in every round and slot (round {row}, slot {slot} "
            f"sums to {sums[row, slot]:g})",
            path=source,
            field="action_dist",
        )
    if int(feedback.position.max()) >= pi.shape[2]:
        raise DatasetError(
            f"has {pi.shape[2]} slots (len_list) but the logs have position "
            f"{int(feedback.position.max())}; give one slot per logged position",
            path=source,
            field="action_dist",
        )
    return pi


def check_reward_model(
    estimated_rewards_by_reg_model: Any, action_dist: np.ndarray, source: str = "reward_model"
) -> np.ndarray:
    """``q^`` as float64 with ``action_dist``'s shape ``[n, K, len_list]``."""
    q = as_3d(estimated_rewards_by_reg_model, "estimated_rewards_by_reg_model", source)
    if q.shape != action_dist.shape:
        raise DatasetError(
            f"has shape {q.shape} but action_dist has {action_dist.shape}; they must agree",
            path=source,
            field="estimated_rewards_by_reg_model",
        )
    return q


def resolve_estimators(
    estimators: str | Iterable[str] | None, have_reward_model: bool
) -> list[str]:
    """The estimator names to run: all of :data:`ESTIMATORS` by default (only the model-free
    ones, ``ipw, snipw, sg-ipw``, without a reward model); a comma-separated string works too."""
    if estimators is None:
        return [e for e in ESTIMATORS if have_reward_model or e not in MODEL_BASED]
    names = estimators.split(",") if isinstance(estimators, str) else list(estimators)
    names = [str(e).strip().lower() for e in names if str(e).strip()]
    if not names:
        raise ConfigError("no estimator named", path="ope", field="estimators")
    unknown = [e for e in names if e not in ESTIMATORS]
    if unknown:
        raise ConfigError(
            f"unknown estimator {unknown[0]!r}; choose from {', '.join(ESTIMATORS)}",
            path="ope",
            field="estimators",
        )
    if not have_reward_model:
        needy = [e for e in names if e in MODEL_BASED]
        if needy:
            raise ConfigError(
                f"{', '.join(needy)} need estimated_rewards_by_reg_model (q^ [n, K, len_list]); "
                "pass one (policyfit.bandit.fit_reward_model fits it) or use ipw, snipw, sg-ipw",
                path="ope",
                field="estimated_rewards_by_reg_model",
            )
    return list(dict.fromkeys(names))


def resolve_lambdas(
    names: Sequence[str], lambda_: float | Mapping[str, float] | None
) -> dict[str, float]:
    """Each named estimator's ``lambda_``: OBP's default unless ``lambda_`` (one number for every
    estimator that has one, or a dict by name) says otherwise; ranges checked as OBP does."""
    given: dict[str, float] = {}
    if isinstance(lambda_, Mapping):
        for key, value in lambda_.items():
            if key not in DEFAULT_LAMBDA:
                raise ConfigError(
                    f"{key!r} takes no lambda_; these do: {', '.join(DEFAULT_LAMBDA)}",
                    path="ope",
                    field="lambda_",
                )
            given[key] = value
    elif lambda_ is not None:
        given = {name: lambda_ for name in names if name in DEFAULT_LAMBDA}
    out = {}
    for name in names:
        if name not in DEFAULT_LAMBDA:
            continue
        value = given.get(name, DEFAULT_LAMBDA[name])
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}: lambda_ must be a number, got {value!r}", path="ope", field="lambda_"
            ) from None
        upper = 1.0 if name.startswith("sg-") else math.inf
        if math.isnan(value) or not 0.0 <= value <= upper:
            where = "[0, 1]" if upper == 1.0 else "[0, inf]"
            raise ConfigError(
                f"{name}: lambda_ must lie in {where}, got {value}", path="ope", field="lambda_"
            )
        out[name] = value
    return out


# ----------------------------------------------------------------------------- estimators
def _shrunk(w: np.ndarray, name: str, lam: float) -> np.ndarray:
    """The weight each estimator puts on a round's residual (see the module table)."""
    if name in ("ipw", "dr"):
        return np.minimum(w, lam)
    if name in ("snipw", "sndr"):
        return w / w.mean()
    if name == "switch-dr":
        return w * (w <= lam)
    if name == "dr-os":
        if math.isinf(lam):
            return w
        with np.errstate(invalid="ignore", divide="ignore"):
            out = lam * w / (w**2 + lam)
        return np.where(w == 0, 0.0, out)
    if name in ("sg-ipw", "sg-dr"):
        with np.errstate(invalid="ignore", divide="ignore"):
            out = w / (1.0 - lam + lam * w)
        return np.where(w == 0, 0.0, out)
    raise AssertionError(name)


def round_rewards(
    name: str,
    feedback: BanditFeedback,
    action_dist: np.ndarray,
    estimated_rewards_by_reg_model: np.ndarray | None = None,
    lambda_: float | None = None,
) -> np.ndarray:
    """The round-wise values ``[n]`` of estimator ``name`` (its estimate is their mean).

    ``action_dist`` and ``estimated_rewards_by_reg_model`` must already be checked
    (:func:`check_action_dist`, :func:`check_reward_model`); ``lambda_=None``: OBP's default.
    """
    lam = DEFAULT_LAMBDA.get(name, math.inf) if lambda_ is None else float(lambda_)
    n = feedback.n_rounds
    rows = np.arange(n)
    pos = feedback.position
    reward = feedback.reward
    w = action_dist[rows, feedback.action, pos] / feedback.pscore
    if name in ("ipw", "snipw", "sg-ipw"):
        return reward * _shrunk(w, name, lam)
    q = estimated_rewards_by_reg_model
    if q is None:
        raise ConfigError(
            f"{name} needs estimated_rewards_by_reg_model", path="ope", field="estimators"
        )
    pi_at = action_dist[rows, :, pos]
    dm = np.average(q[rows, :, pos], weights=pi_at, axis=1)
    if name == "dm":
        return dm
    residual = reward - q[rows, feedback.action, pos]
    return dm + _shrunk(w, name, lam) * residual


def _prepare(
    feedback: BanditFeedback | Mapping[str, Any] | str,
    action_dist: Any,
    estimators: str | Iterable[str] | None,
    estimated_rewards_by_reg_model: Any,
    estimator_options: Mapping[str, Any],
) -> tuple[BanditFeedback, np.ndarray, np.ndarray | None, list[str], dict[str, float]]:
    unknown = sorted(set(estimator_options) - {"lambda_"})
    if unknown:
        raise ConfigError(
            f"unknown estimator option {unknown[0]!r}; the options are: lambda_ "
            "(one number, or a dict such as {'dr-os': 100.0, 'sg-dr': 0.1})",
            path="ope",
            field=unknown[0],
        )
    fb = load_feedback(feedback)
    pi = check_action_dist(action_dist, fb)
    q = None
    if estimated_rewards_by_reg_model is not None:
        q = check_reward_model(estimated_rewards_by_reg_model, pi)
    names = resolve_estimators(estimators, q is not None)
    lambdas = resolve_lambdas(names, estimator_options.get("lambda_"))
    return fb, pi, q, names, lambdas


def estimate_policy_values(
    feedback: BanditFeedback | Mapping[str, Any] | str,
    action_dist: Any,
    estimators: str | Iterable[str] | None = None,
    estimated_rewards_by_reg_model: Any = None,
    **estimator_options: Any,
) -> dict[str, float]:
    """Estimate the value of the target policy ``action_dist`` with each named estimator.

    The shape of OBP's ``OffPolicyEvaluation(bandit_feedback, ope_estimators)
    .estimate_policy_values(action_dist, estimated_rewards_by_reg_model)``.

    Args:
        feedback: a :class:`BanditFeedback`, an OBP ``bandit_feedback`` dict or an ``.npz`` path.
        action_dist: ``pi_e(a | x_i, k)``, ``[n, K, len_list]`` (``[n, K]`` for one slot).
        estimators: names from :data:`ESTIMATORS` (list or comma-separated); default: all, or
            the model-free ``ipw, snipw, sg-ipw`` when no reward model is given.
        estimated_rewards_by_reg_model: ``q^(x_i, a, k)`` with ``action_dist``'s shape, needed by
            ``dm, dr, sndr, switch-dr, dr-os, sg-dr`` (see :func:`fit_reward_model`).
        **estimator_options: ``lambda_``: one number for every estimator that has one, or a dict
            by estimator name; the others keep OBP's defaults (:data:`DEFAULT_LAMBDA`).

    Returns:
        ``{estimator name: estimated policy value}`` in the order asked for.

    Raises:
        DatasetError: bad feedback, action_dist or reward model (one line naming the field).
        ConfigError: unknown estimator or option, or a model-based estimator without ``q^``.
    """
    fb, pi, q, names, lambdas = _prepare(
        feedback, action_dist, estimators, estimated_rewards_by_reg_model, estimator_options
    )
    return {name: float(round_rewards(name, fb, pi, q, lambdas.get(name)).mean()) for name in names}


def bootstrap_indices(
    n: int, n_bootstrap_samples: int, random_state: int | None
) -> Iterable[np.ndarray]:
    """Chunks ``[b, n]`` of resampled row indices, the stream OBP draws: a
    ``RandomState(random_state)`` whose ``choice(samples, size=n)`` is ``randint(0, n, n)``."""
    rs = np.random.RandomState(random_state)
    per_chunk = max(1, BOOTSTRAP_CHUNK // max(n, 1))
    done = 0
    while done < n_bootstrap_samples:
        b = min(per_chunk, n_bootstrap_samples - done)
        yield rs.randint(0, n, size=(b, n))
        done += b


def bootstrap_interval(
    samples: np.ndarray,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10_000,
    random_state: int | None = None,
) -> dict[str, float]:
    """OBP's ``estimate_confidence_interval_by_bootstrap`` of the mean of ``samples``."""
    return _bootstrap_many({"x": samples}, alpha, n_bootstrap_samples, random_state)["x"]


def _check_interval_args(alpha: Any, n_bootstrap_samples: Any, random_state: Any) -> None:
    if not isinstance(alpha, float) or not 0.0 < alpha < 1.0:
        raise ConfigError(f"must be a float in (0, 1), got {alpha!r}", path="ope", field="alpha")
    if isinstance(n_bootstrap_samples, bool) or not isinstance(n_bootstrap_samples, int):
        raise ConfigError(
            f"must be an integer >= 1, got {n_bootstrap_samples!r}",
            path="ope",
            field="n_bootstrap_samples",
        )
    if n_bootstrap_samples < 1:
        raise ConfigError(
            f"must be an integer >= 1, got {n_bootstrap_samples}",
            path="ope",
            field="n_bootstrap_samples",
        )
    if random_state is not None and (
        isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0
    ):
        raise ConfigError(
            f"must be None or an integer >= 0, got {random_state!r}",
            path="ope",
            field="random_state",
        )


def _bootstrap_many(
    samples: Mapping[str, np.ndarray],
    alpha: float,
    n_bootstrap_samples: int,
    random_state: int | None,
) -> dict[str, dict[str, float]]:
    _check_interval_args(alpha, n_bootstrap_samples, random_state)
    n = len(next(iter(samples.values())))
    means: dict[str, list[np.ndarray]] = {name: [] for name in samples}
    for idx in bootstrap_indices(n, n_bootstrap_samples, random_state):
        for name, values in samples.items():
            means[name].append(values[idx].mean(axis=1))
    label = f"{100 * (1.0 - alpha)}% CI"
    out = {}
    for name, chunks in means.items():
        boot = np.concatenate(chunks)
        out[name] = {
            "mean": float(np.mean(boot)),
            f"{label} (lower)": float(np.percentile(boot, 100 * (alpha / 2))),
            f"{label} (upper)": float(np.percentile(boot, 100 * (1.0 - alpha / 2))),
        }
    return out


def estimate_intervals(
    feedback: BanditFeedback | Mapping[str, Any] | str,
    action_dist: Any,
    estimators: str | Iterable[str] | None = None,
    estimated_rewards_by_reg_model: Any = None,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 100,
    random_state: int | None = None,
    **estimator_options: Any,
) -> dict[str, dict[str, float]]:
    """Bootstrap intervals of each estimator, OBP's ``OffPolicyEvaluation.estimate_intervals``
    (same defaults: ``alpha=0.05``, ``n_bootstrap_samples=100``, ``random_state=None``).

    Returns ``{name: {"mean": ..., "95.0% CI (lower)": ..., "95.0% CI (upper)": ...}}``; the
    arguments are those of :func:`estimate_policy_values`.
    """
    both = evaluate(
        feedback,
        action_dist,
        estimators,
        estimated_rewards_by_reg_model,
        alpha,
        n_bootstrap_samples,
        random_state,
        **estimator_options,
    )
    return {name: {k: v for k, v in r.items() if k != "estimate"} for name, r in both.items()}


def evaluate(
    feedback: BanditFeedback | Mapping[str, Any] | str,
    action_dist: Any,
    estimators: str | Iterable[str] | None = None,
    estimated_rewards_by_reg_model: Any = None,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 100,
    random_state: int | None = None,
    **estimator_options: Any,
) -> dict[str, dict[str, float]]:
    """Point estimates and intervals in one pass: ``{name: {"estimate": value, "mean": ...,
    "95.0% CI (lower)": ..., "95.0% CI (upper)": ...}}`` (what ``policyfit bandit ope`` prints)."""
    fb, pi, q, names, lambdas = _prepare(
        feedback, action_dist, estimators, estimated_rewards_by_reg_model, estimator_options
    )
    samples = {name: round_rewards(name, fb, pi, q, lambdas.get(name)) for name in names}
    intervals = _bootstrap_many(samples, alpha, n_bootstrap_samples, random_state)
    return {name: {"estimate": float(samples[name].mean()), **intervals[name]} for name in names}
