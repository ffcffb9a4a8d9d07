"""The synthetic generator: OBP's knobs do what they say; target policies and the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.bandit.synthetic import (
    SyntheticBanditDataset,
    action_dist_from_scores,
    ground_truth_policy_value,
    polynomial_features,
)
from policyfit.errors import ConfigError


def test_polynomial_features_follow_scikit_learns_order():
    x = np.array([[2.0, 3.0], [1.0, -1.0]])
    # 1, a, b, a^2, ab, b^2
    assert polynomial_features(x, 2).tolist() == [
        [1, 2, 3, 4, 6, 9],
        [1, 1, -1, 1, -1, 1],
    ]


def test_same_seed_same_batches_and_successive_batches_differ():
    kw = dict(n_actions=4, dim_context=3, reward_function="logistic", random_state=7)
    a1 = SyntheticBanditDataset(**kw).obtain_batch_bandit_feedback(50)
    gen = SyntheticBanditDataset(**kw)
    b1, b2 = gen.obtain_batch_bandit_feedback(50), gen.obtain_batch_bandit_feedback(50)
    np.testing.assert_array_equal(a1.context, b1.context)
    np.testing.assert_array_equal(a1.action, b1.action)
    assert not np.array_equal(b1.context, b2.context)
    # q is one function of x: the same context gives the same q in any batch
    np.testing.assert_allclose(gen.expected_reward(b1.context), b1.expected_reward)


def test_logged_actions_follow_pi_b_and_pscore_is_pi_b_of_the_action():
    gen = SyntheticBanditDataset(n_actions=3, dim_context=2, reward_function="logistic", beta=2.0)
    fb = gen.obtain_batch_bandit_feedback(20_000)
    np.testing.assert_allclose(fb.pscore, fb.pi_b[np.arange(fb.n_rounds), fb.action, 0])
    # frequencies match the average logging probabilities (binomial sd < 0.0035 at n=20k)
    freq = np.bincount(fb.action, minlength=3) / fb.n_rounds
    np.testing.assert_allclose(freq, fb.pi_b[:, :, 0].mean(axis=0), atol=0.015)
    # binary rewards with mean q of the logged action
    assert set(np.unique(fb.reward)) <= {0.0, 1.0}
    q_logged = fb.expected_reward[np.arange(fb.n_rounds), fb.action]
    assert abs(fb.reward.mean() - q_logged.mean()) < 0.015


def test_beta_sign_makes_the_logger_good_or_bad():
    values = {}
    for beta in (-3.0, 0.0, 3.0):
        gen = SyntheticBanditDataset(
            n_actions=5, dim_context=3, reward_function="logistic", beta=beta, random_state=3
        )
        fb = gen.obtain_batch_bandit_feedback(5000)
        values[beta] = ground_truth_policy_value(fb, fb.pi_b)
    assert values[-3.0] < values[0.0] < values[3.0]


def test_deficient_actions_have_zero_probability_and_are_never_logged():
    gen = SyntheticBanditDataset(n_actions=6, dim_context=2, n_deficient_actions=4, random_state=1)
    fb = gen.obtain_batch_bandit_feedback(2000)
    assert ((fb.pi_b[:, :, 0] == 0).sum(axis=1) == 4).all()
    assert (fb.pscore > 0).all()
    # the unsupported set differs between rounds
    assert len({tuple(np.flatnonzero(row == 0)) for row in fb.pi_b[:50, :, 0]}) > 5


def test_context_free_default_and_continuous_rewards():
    gen = SyntheticBanditDataset(n_actions=3, reward_function=None, random_state=0)
    fb = gen.obtain_batch_bandit_feedback(10)
    assert (fb.expected_reward == fb.expected_reward[0]).all()
    cont = SyntheticBanditDataset(
        n_actions=3, reward_type="continuous", reward_function="linear", reward_std=0.0
    ).obtain_batch_bandit_feedback(100)
    np.testing.assert_allclose(cont.reward, cont.expected_reward[np.arange(100), cont.action])


def test_action_dist_kinds_and_ground_truth_by_hand():
    q = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.4]])
    greedy = action_dist_from_scores(q, "greedy")
    assert greedy[:, :, 0].tolist() == [[0, 1, 0], [1, 0, 0]]
    eps = action_dist_from_scores(q, "epsilon_greedy", epsilon=0.3)
    np.testing.assert_allclose(eps[0, :, 0], [0.1, 0.8, 0.1])
    soft = action_dist_from_scores(q, "softmax", beta=0.0)
    np.testing.assert_allclose(soft[:, :, 0], 1 / 3)
    # greedy: (0.9 + 0.7) / 2; epsilon-greedy row 0: 0.1*0.1 + 0.8*0.9 + 0.1*0.5 = 0.78,
    # row 1: 0.8*0.7 + 0.1*0.2 + 0.1*0.4 = 0.62
    assert ground_truth_policy_value(q, greedy) == pytest.approx(0.8)
    assert ground_truth_policy_value(q, eps) == pytest.approx(0.70)


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"n_actions": 1}, "n_actions"),
        ({"n_actions": 3, "reward_type": "ordinal"}, "reward_type"),
        ({"n_actions": 3, "reward_function": "cubic"}, "reward_function"),
        ({"n_actions": 3, "reward_function": "linear"}, "reward_function"),  # binary needs [0, 1]
        ({"n_actions": 3, "n_deficient_actions": 3}, "n_deficient_actions"),
        ({"n_actions": 3, "behavior_policy_function": "tree"}, "behavior_policy_function"),
    ],
)
def test_bad_knobs_are_config_errors(knobs, field):
    with pytest.raises(ConfigError) as info:
        SyntheticBanditDataset(**knobs)
    assert info.value.field == field
