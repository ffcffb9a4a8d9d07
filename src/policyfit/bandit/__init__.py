"""Contextual bandits from logged feedback: the feedback type, synthetic data, off-policy evaluation.

* :mod:`policyfit.bandit.feedback`: :class:`BanditFeedback` (OBP's ``bandit_feedback`` fields,
  validated), ``.npz`` files and OBP-shaped dicts, one-step :class:`~policyfit.data.Dataset`.
* :mod:`policyfit.bandit.synthetic`: :class:`SyntheticBanditDataset` (OBP's knobs), target
  policies and their ground-truth values.
* :mod:`policyfit.bandit.ope`: OBP's estimators (``ipw, snipw, dm, dr, sndr, switch-dr, dr-os,
  sg-ipw, sg-dr``), :func:`estimate_policy_values`, bootstrap :func:`estimate_intervals`.
* :mod:`policyfit.bandit.regression`: :func:`fit_reward_model`, the cross-fitted ``q^``.
* :mod:`policyfit.bandit.learn`: :func:`learn_policy` (regression oracle, IPW, DR) ->
  :class:`LinearPolicy` (greedy, epsilon, IGW or softmax; ``action_dist`` for OPE).
* :mod:`policyfit.bandit.explore` and :mod:`policyfit.bandit.oracle`: epsilon-greedy, inverse-gap
  weighting (SquareCB) with masks, FALCON's schedule; the per-action ridge oracle.
* :mod:`policyfit.bandit.simulate`: :func:`simulate`, the generations loop on :class:`PaymentEnv`.
* :mod:`policyfit.bandit.online` (jitted SquareCB and FALCON streams) and
  :mod:`policyfit.bandit.dpt` (the Decision-Pretrained Transformer) import JAX: import them by name.
* :mod:`policyfit.bandit.obd`: the Open Bandit Dataset reader and sample fetcher.

Example:
    >>> from policyfit import bandit
    >>> gen = bandit.SyntheticBanditDataset(n_actions=3, dim_context=2,
    ...                                     reward_function="logistic", random_state=0)
    >>> fb = gen.obtain_batch_bandit_feedback(2000)
    >>> pi_e = bandit.action_dist_from_scores(fb.expected_reward, "epsilon_greedy", epsilon=0.2)
    >>> q_hat = bandit.fit_reward_model(fb, n_folds=2, random_state=0)
    >>> values = bandit.estimate_policy_values(fb, pi_e, ["ipw", "dr"],
    ...                                        estimated_rewards_by_reg_model=q_hat)
    >>> truth = bandit.ground_truth_policy_value(fb, pi_e)
    >>> all(abs(v - truth) < 0.05 for v in values.values())
    True
"""

from policyfit.bandit.feedback import (
    BanditFeedback,
    from_dataset,
    load_feedback,
    save_feedback,
)
from policyfit.bandit.learn import LinearPolicy, learn_policy, load_bandit_policy
from policyfit.bandit.ope import (
    DEFAULT_LAMBDA,
    ESTIMATORS,
    estimate_intervals,
    estimate_policy_values,
    evaluate,
)
from policyfit.bandit.oracle import RidgeOracle
from policyfit.bandit.regression import fit_reward_model
from policyfit.bandit.simulate import PaymentEnv, simulate
from policyfit.bandit.synthetic import (
    SyntheticBanditDataset,
    action_dist_from_scores,
    ground_truth_policy_value,
)

__all__ = [
    "DEFAULT_LAMBDA",
    "ESTIMATORS",
    "BanditFeedback",
    "LinearPolicy",
    "PaymentEnv",
    "RidgeOracle",
    "SyntheticBanditDataset",
    "action_dist_from_scores",
    "estimate_intervals",
    "estimate_policy_values",
    "evaluate",
    "fit_reward_model",
    "from_dataset",
    "ground_truth_policy_value",
    "learn_policy",
    "load_bandit_policy",
    "load_feedback",
    "save_feedback",
    "simulate",
]
