"""OPE estimators: hand-computed values on a 5-round example, positions, OBP's bootstrap, input
errors, and unbiasedness of IPW/DR on synthetic data with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.bandit import (
    BanditFeedback,
    SyntheticBanditDataset,
    action_dist_from_scores,
    estimate_intervals,
    estimate_policy_values,
    evaluate,
    ground_truth_policy_value,
)
from policyfit.bandit.ope import bootstrap_interval
from policyfit.errors import ConfigError, DatasetError

# 5 rounds, 3 actions. w = pi_e(a_i) / pscore_i = [1.2, 3.2, 5.0, 0.5, 0.0]
FB = BanditFeedback(
    context=np.zeros((5, 1)),
    action=[0, 1, 2, 0, 1],
    reward=[1.0, 0.0, 1.0, 1.0, 0.0],
    pscore=[0.5, 0.25, 0.2, 0.4, 0.5],
    n_actions=3,
)
PI = np.array(
    [[0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0], [0.2, 0.4, 0.4], [0.5, 0.0, 0.5]]
)[:, :, None]
Q = np.array([[0.5, 0.2, 0.1], [0.3, 0.4, 0.2], [0.1, 0.2, 0.6], [0.7, 0.1, 0.3], [0.2, 0.5, 0.4]])[
    :, :, None
]
# DM_i = sum_a pi q = [0.36, 0.37, 0.60, 0.30, 0.30] -> 0.386
# residuals r - q(a_i) = [0.5, -0.4, 0.4, 0.3, -0.5]; w * residual sums to 1.47

HAND = {
    "ipw": 6.7 / 5,  # w r = [1.2, 0, 5, 0.5, 0]
    "snipw": (6.7 / 5) / (9.9 / 5),  # mean(w) = 1.98
    "dm": 1.93 / 5,
    "dr": 0.386 + 1.47 / 5,
    "sndr": 0.386 + (1.47 / 5) / 1.98,
    "switch-dr": 0.386 + 1.47 / 5,  # lambda = inf: DR
    "dr-os": 0.386,  # lambda = 0: DM
    "sg-ipw": 6.7 / 5,  # lambda = 0: IPW
    "sg-dr": 0.386 + 1.47 / 5,  # lambda = 0: DR
}


def test_every_estimator_with_obps_defaults_matches_the_hand_computation():
    values = estimate_policy_values(FB, PI, estimated_rewards_by_reg_model=Q)
    assert list(values) == list(HAND)
    for name, expected in HAND.items():
        assert values[name] == pytest.approx(expected, abs=1e-12), name


@pytest.mark.parametrize(
    ("name", "lam", "expected"),
    [
        ("ipw", 3.0, 4.7 / 5),  # min(w, 3) r = [1.2, 0, 3, 0.5, 0]
        ("dr", 1.0, 0.386 + 0.65 / 5),  # min(w, 1) * res = [0.5, -0.4, 0.4, 0.15, 0]
        ("switch-dr", 3.0, 0.386 + 0.75 / 5),  # keeps rounds 0, 3, 4: 0.6 + 0.15 + 0
        # w / (w^2 + 1) = [1.2/2.44, 3.2/11.24, 5/26, 0.4, 0]
        (
            "dr-os",
            1.0,
            0.386 + (0.5 * 1.2 / 2.44 - 0.4 * 3.2 / 11.24 + 0.4 * 5 / 26 + 0.3 * 0.4) / 5,
        ),
        # w / (0.5 + 0.5 w) = [1.2/1.1, 3.2/2.1, 5/3, 0.5/0.75, 0]
        ("sg-ipw", 0.5, (1.2 / 1.1 + 5 / 3 + 0.5 / 0.75) / 5),
        (
            "sg-dr",
            0.5,
            0.386 + (0.5 * 1.2 / 1.1 - 0.4 * 3.2 / 2.1 + 0.4 * 5 / 3 + 0.3 * 0.5 / 0.75) / 5,
        ),
    ],
)
def test_lambda_of_each_estimator(name, lam, expected):
    as_dict = estimate_policy_values(FB, PI, [name], Q, lambda_={name: lam})
    as_number = estimate_policy_values(FB, PI, [name], Q, lambda_=lam)
    assert as_dict[name] == pytest.approx(expected, abs=1e-12)
    assert as_number == as_dict


def test_zero_weight_rounds_stay_finite_where_obp_divides_zero_by_zero():
    # round 4 has w = 0: dr-os with lambda 0 and sg with lambda 1 are 0/0 in OBP (NaN)
    values = estimate_policy_values(
        FB, PI, ["dr-os", "sg-ipw", "sg-dr"], Q, lambda_={"dr-os": 0.0, "sg-ipw": 1.0, "sg-dr": 1.0}
    )
    assert values["dr-os"] == pytest.approx(0.386)
    assert values["sg-ipw"] == pytest.approx(3 / 5)  # weight 1 on every round with w > 0
    assert values["sg-dr"] == pytest.approx(0.386 + (0.5 - 0.4 + 0.4 + 0.3) / 5)


def test_positions_pick_the_slot_of_each_round():
    fb = BanditFeedback(
        context=np.zeros((4, 1)),
        action=[0, 1, 0, 1],
        position=[0, 1, 1, 0],
        reward=[1.0, 1.0, 0.0, 1.0],
        pscore=[0.5, 0.5, 0.25, 0.5],
        n_actions=2,
    )
    pi = np.zeros((4, 2, 2))
    pi[:, :, 0] = [[1, 0], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]]
    pi[:, :, 1] = [[0, 1], [0.9, 0.1], [0.7, 0.3], [0.3, 0.7]]
    # w = [1/0.5, 0.1/0.5, 0.7/0.25, 0.6/0.5] = [2, 0.2, 2.8, 1.2]; r = [1, 1, 0, 1]
    assert estimate_policy_values(fb, pi, ["ipw"])["ipw"] == pytest.approx(3.4 / 4)
    q = np.zeros((4, 2, 2))
    q[:, :, 1] = 1.0  # slot 1 predicts 1 for everything, slot 0 predicts 0
    # DM_i = 0 for the slot-0 rounds (0, 3), 1 for the slot-1 rounds (1, 2)
    assert estimate_policy_values(fb, pi, ["dm"], q)["dm"] == pytest.approx(0.5)
    with pytest.raises(
        DatasetError, match=r"action_dist: has 1 slots \(len_list\) but the logs have position 1"
    ):
        estimate_policy_values(fb, pi[:, :, :1], ["ipw"])


def test_defaults_without_a_reward_model_are_the_model_free_estimators():
    assert list(estimate_policy_values(FB, PI)) == ["ipw", "snipw", "sg-ipw"]
    # a 2-d action_dist is one slot; feedback as an OBP dict works too
    assert estimate_policy_values(FB.to_obp_dict(), PI[:, :, 0], "ipw") == {
        "ipw": pytest.approx(1.34)
    }


def obp_bootstrap(samples, alpha, n_boot, seed):
    """OBP 0.5.7's estimate_confidence_interval_by_bootstrap, written out."""
    rs = np.random.RandomState(seed)
    boot = [np.mean(rs.choice(samples, size=samples.shape[0])) for _ in range(n_boot)]
    return (
        np.mean(boot),
        np.percentile(boot, 100 * alpha / 2),
        np.percentile(boot, 100 * (1 - alpha / 2)),
    )


def test_bootstrap_is_obps_procedure_with_the_same_seed():
    samples = np.random.default_rng(0).normal(size=57)
    got = bootstrap_interval(samples, alpha=0.1, n_bootstrap_samples=300, random_state=4)
    mean, lo, hi = obp_bootstrap(samples, 0.1, 300, 4)
    assert list(got) == ["mean", "90.0% CI (lower)", "90.0% CI (upper)"]
    assert got["mean"] == pytest.approx(mean, abs=1e-12)
    assert got["90.0% CI (lower)"] == pytest.approx(lo, abs=1e-12)
    assert got["90.0% CI (upper)"] == pytest.approx(hi, abs=1e-12)


def test_intervals_use_the_same_resamples_for_every_estimator():
    out = estimate_intervals(FB, PI, ["ipw", "sg-ipw"], n_bootstrap_samples=50, random_state=0)
    assert out["ipw"] == out["sg-ipw"]  # lambda 0: identical round values, identical resamples
    ipw_rounds = np.array([1.2, 0, 5, 0.5, 0])
    mean, lo, hi = obp_bootstrap(ipw_rounds, 0.05, 50, 0)
    assert out["ipw"]["95.0% CI (lower)"] == pytest.approx(lo) and out["ipw"][
        "mean"
    ] == pytest.approx(mean)
    both = evaluate(FB, PI, ["ipw"], n_bootstrap_samples=50, random_state=0)
    assert both["ipw"]["estimate"] == pytest.approx(1.34)
    assert both["ipw"]["95.0% CI (upper)"] == pytest.approx(hi)


@pytest.mark.parametrize(
    ("call", "error", "expected"),
    [
        (
            lambda: estimate_policy_values(FB, PI, ["dr"]),
            ConfigError,
            "ope: estimated_rewards_by_reg_model: dr need",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["tmle"]),
            ConfigError,
            "ope: estimators: unknown estimator 'tmle'",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["sg-ipw"], lambda_=2.0),
            ConfigError,
            "ope: lambda_: sg-ipw: lambda_ must lie in [0, 1], got 2.0",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["ipw"], lambda_={"snipw": 1.0}),
            ConfigError,
            "ope: lambda_: 'snipw' takes no lambda_",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["ipw"], clip=3),
            ConfigError,
            "ope: clip: unknown estimator option 'clip'",
        ),
        (
            lambda: estimate_policy_values(FB, PI[:4], ["ipw"]),
            DatasetError,
            "action_dist: action_dist: has shape (4, 3, 1); expected [n_rounds, n_actions, len_list] = [5, 3, L]",
        ),
        (
            lambda: estimate_policy_values(FB, PI * 2, ["ipw"]),
            DatasetError,
            "action_dist: action_dist: holds values outside [0, 1]",
        ),
        (
            lambda: estimate_policy_values(FB, PI * 0.5, ["ipw"]),
            DatasetError,
            "action_dist: action_dist: must sum to 1 over the actions in every round and slot (round 0, slot 0 sums to 0.5)",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["dm"], Q[:, :2]),
            DatasetError,
            "reward_model: estimated_rewards_by_reg_model: has shape (5, 2, 1) but action_dist has (5, 3, 1)",
        ),
        (
            lambda: estimate_policy_values(FB, PI, ["dm"], Q * np.nan),
            DatasetError,
            "reward_model: estimated_rewards_by_reg_model: contains NaN",
        ),
        (
            lambda: estimate_intervals(FB, PI, ["ipw"], alpha=5),
            ConfigError,
            "ope: alpha: must be a float in (0, 1)",
        ),
        (
            lambda: estimate_intervals(FB, PI, ["ipw"], n_bootstrap_samples=0),
            ConfigError,
            "ope: n_bootstrap_samples: must be an integer >= 1",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(call, error, expected):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(expected), str(info.value)


def test_ipw_and_dr_are_unbiased_with_known_truth_and_their_intervals_cover_it():
    """30 independent logs of a bad logger (beta = -1) and an epsilon-greedy target: the mean
    error of IPW and of DR (with a reward model that is off by +0.2 everywhere, so DM is biased)
    is within 3 standard errors of 0; the bootstrap intervals cover the truth most of the time."""
    errors = {"ipw": [], "dr": [], "dm": []}
    covered = {"ipw": 0, "dr": 0}
    repeats = 30
    for seed in range(repeats):
        gen = SyntheticBanditDataset(
            n_actions=5, dim_context=3, reward_function="logistic", beta=-1.0, random_state=seed
        )
        fb = gen.obtain_batch_bandit_feedback(1000)
        pi = action_dist_from_scores(fb.expected_reward, "epsilon_greedy", epsilon=0.3)
        truth = ground_truth_policy_value(fb, pi)
        q_off = fb.expected_reward[:, :, None] + 0.2
        out = evaluate(
            fb, pi, ["ipw", "dr", "dm"], q_off, n_bootstrap_samples=200, random_state=seed
        )
        for name in errors:
            errors[name].append(out[name]["estimate"] - truth)
        for name in covered:
            covered[name] += out[name]["95.0% CI (lower)"] <= truth <= out[name]["95.0% CI (upper)"]
    for name in ("ipw", "dr"):
        e = np.array(errors[name])
        assert abs(e.mean()) < 3 * e.std(ddof=1) / np.sqrt(repeats), (name, e.mean())
        assert covered[name] >= 0.8 * repeats, (name, covered[name])
    assert np.mean(errors["dm"]) == pytest.approx(0.2, abs=1e-9)  # DM inherits the model's bias
