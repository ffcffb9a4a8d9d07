"""The reward model: exact on a noise-free linear bandit, cross-fitting never uses a round's own
reward for its prediction, logistic for binary rewards, per-slot models, option errors."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.bandit import BanditFeedback, SyntheticBanditDataset, fit_reward_model
from policyfit.errors import ConfigError


def linear_feedback(n=300, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    action = rng.integers(0, 3, size=n)
    coef = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.0]])
    bias = np.array([0.3, -0.1, 0.0])
    q = x @ coef.T + bias
    reward = q[np.arange(n), action] + noise * rng.normal(size=n)
    fb = BanditFeedback(
        context=x, action=action, reward=reward, pscore=np.full(n, 1 / 3), n_actions=3
    )
    return fb, q


def test_ridge_with_interactions_recovers_a_per_action_linear_reward_exactly():
    fb, q = linear_feedback()
    q_hat = fit_reward_model(fb, model="ridge", l2=0.0)
    np.testing.assert_allclose(q_hat[:, :, 0], q, atol=1e-8)
    # OBP's concatenated features share one context effect across actions: they cannot
    concat = fit_reward_model(fb, model="ridge", l2=0.0, features="concat")
    assert np.abs(concat[:, :, 0] - q).max() > 0.5


def test_cross_fitting_never_uses_a_rounds_own_reward():
    fb, _ = linear_feedback(noise=0.5)
    q_hat = fit_reward_model(fb, model="ridge", n_folds=3, random_state=1)
    changed = fb.to_obp_dict()
    changed["reward"][7] += 100.0
    q_changed = fit_reward_model(changed, model="ridge", n_folds=3, random_state=1)
    np.testing.assert_array_equal(q_hat[7], q_changed[7])  # round 7 is predicted by other folds
    assert np.abs(q_hat - q_changed).max() > 1.0  # ... and its reward moved theirs
    # in-sample (one fold) the round's own prediction moves
    in_sample = fit_reward_model(fb, model="ridge")
    assert not np.allclose(in_sample[7], fit_reward_model(changed, model="ridge")[7])


def test_auto_picks_logistic_for_binary_rewards_and_it_estimates_probabilities():
    gen = SyntheticBanditDataset(
        n_actions=3, dim_context=2, reward_function="logistic", random_state=5
    )
    fb = gen.obtain_batch_bandit_feedback(6000)
    q_hat = fit_reward_model(fb, n_folds=2, random_state=0)
    assert q_hat.min() > 0 and q_hat.max() < 1
    assert np.abs(q_hat[:, :, 0] - fb.expected_reward).mean() < 0.05
    ridge = fit_reward_model(fb, model="ridge", n_folds=2, random_state=0)
    assert not np.allclose(ridge, q_hat)


def test_one_model_per_slot():
    n = 200
    rng = np.random.default_rng(0)
    position = rng.integers(0, 2, size=n)
    fb = BanditFeedback(
        context=rng.normal(size=(n, 1)),
        action=rng.integers(0, 2, size=n),
        position=position,
        reward=np.where(position == 1, 5.0, -1.0),
        pscore=np.full(n, 0.5),
        n_actions=2,
    )
    q_hat = fit_reward_model(fb, model="ridge", l2=0.0)
    assert q_hat.shape == (n, 2, 2)
    np.testing.assert_allclose(q_hat[:, :, 0], -1.0, atol=1e-8)
    np.testing.assert_allclose(q_hat[:, :, 1], 5.0, atol=1e-8)


def test_importance_weighted_fit_weights_rounds_by_the_target_policy():
    fb, q = linear_feedback(noise=0.0)
    pi = np.zeros((fb.n_rounds, 3, 1))
    pi[:, 0, 0] = 1.0  # the target only plays action 0: rounds of actions 1, 2 get weight 0
    q_iw = fit_reward_model(fb, model="ridge", fit_method="iw", action_dist=pi, l2=1e-6)
    np.testing.assert_allclose(q_iw[:, 0, 0], q[:, 0], atol=1e-4)
    assert np.abs(q_iw[:, 1, 0] - q[:, 1]).max() > 0.5  # no weighted data on action 1
    with pytest.raises(ConfigError, match=r"reward_model: fit_method: fit_method='mrdr' needs"):
        fit_reward_model(fb, fit_method="mrdr")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"model": "forest"}, "model"),
        ({"features": "kernel"}, "features"),
        ({"n_folds": 0}, "n_folds"),
        ({"n_folds": 10_000}, "n_folds"),
        ({"l2": -1.0}, "l2"),
        ({"model": "logistic"}, "model"),  # rewards outside [0, 1]
    ],
)
def test_bad_options(options, field):
    fb, _ = linear_feedback(n=50)
    with pytest.raises(ConfigError) as info:
        fit_reward_model(fb, **options)
    assert info.value.field == field
