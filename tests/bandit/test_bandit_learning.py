"""Exploration rules, the regression oracle, the off-policy learners and the generations loop."""

import numpy as np
import pytest

from policyfit.bandit import explore
from policyfit.bandit.learn import LinearPolicy, learn_policy, load_bandit_policy, sample_weights
from policyfit.bandit.oracle import RidgeOracle, feature_map
from policyfit.bandit.simulate import PaymentEnv, simulate
from policyfit.errors import PolicyfitError


# ----------------------------------------------------------------------------- exploration
def test_igw_probabilities_by_hand():
    f = np.array([[0.9, 0.5, 0.1, 0.7]])
    p = explore.igw_probs(f, gamma=10.0)
    # K = 4, best = action 0; gaps 0.4, 0.8, 0.2
    expected = [0, 1 / (4 + 4), 1 / (4 + 8), 1 / (4 + 2)]
    expected[0] = 1 - sum(expected[1:])
    np.testing.assert_allclose(p[0], expected, rtol=1e-12)
    # with a mask, K counts the available actions only and masked actions get 0
    mask = np.array([[True, False, True, True]])
    p = explore.igw_probs(f, 10.0, mask)
    expected = [0, 0, 1 / (3 + 8), 1 / (3 + 2)]
    expected[0] = 1 - sum(expected)
    np.testing.assert_allclose(p[0], expected, rtol=1e-12)
    # gamma 0: uniform over the available; huge gamma: (almost) greedy
    np.testing.assert_allclose(explore.igw_probs(f, 0.0, mask)[0], [1 / 3, 0, 1 / 3, 1 / 3])
    assert explore.igw_probs(f, 1e9)[0, 0] > 1 - 1e-8


def test_epsilon_greedy_and_floor_and_masks():
    f = np.array([[0.1, 0.3, 0.2], [0.5, 0.4, 0.9]])
    mask = np.array([[True, True, True], [True, True, False]])
    p = explore.epsilon_greedy_probs(f, 0.3, mask)
    np.testing.assert_allclose(p, [[0.1, 0.8, 0.1], [0.85, 0.15, 0.0]])
    q = explore.uniform_floor(explore.greedy_probs(f, mask), 0.2, mask)
    np.testing.assert_allclose(q, [[0.2 / 3, 0.8 + 0.2 / 3, 0.2 / 3], [0.9, 0.1, 0.0]])
    with pytest.raises(PolicyfitError, match="at least one available action"):
        explore.greedy_probs(f, np.zeros_like(mask))


def test_schedules():
    assert explore.squarecb_gamma(0) == 0.0  # VW: the first prediction is uniform
    assert explore.squarecb_gamma(100) == pytest.approx(100.0)  # 10 * sqrt(100)
    assert explore.falcon_epochs(20) == [2, 4, 8, 16, 20]
    assert explore.falcon_gamma(5, 0) == 0.0
    assert explore.falcon_gamma(5, 64, n_functions=10, delta=0.1) == pytest.approx(
        np.sqrt(5 * 64 / np.log(10 * 64 / 0.1)) / 30
    )


def test_sampled_actions_follow_the_probabilities():
    probs = np.tile([[0.5, 0.0, 0.3, 0.2]], (200_000, 1))
    a, p = explore.sample_actions(probs, np.random.default_rng(0))
    freq = np.bincount(a, minlength=4) / len(a)
    np.testing.assert_allclose(freq, [0.5, 0.0, 0.3, 0.2], atol=0.004)  # > 3.5 SE
    np.testing.assert_array_equal(p, probs[np.arange(len(a)), a])


# ----------------------------------------------------------------------------- oracle
def test_ridge_oracle_is_the_closed_form_and_updates_are_exact():
    rng = np.random.default_rng(1)
    x, a = rng.normal(size=(300, 3)), rng.integers(0, 2, 300)
    r, w = rng.normal(size=300), rng.uniform(0.5, 2, 300)
    oracle = RidgeOracle(2, 3, l2=0.5).fit(x, a, r, w)
    for k in range(2):
        phi, sw = feature_map(x[a == k]), w[a == k]
        theta = np.linalg.solve(
            phi.T @ (sw[:, None] * phi) + 0.5 * np.eye(4), phi.T @ (sw * r[a == k])
        )
        np.testing.assert_allclose(oracle.theta[k], theta, rtol=1e-10)
    online = RidgeOracle(2, 3, l2=0.5)
    for chunk in np.array_split(np.arange(300), 7):
        online.update(x[chunk], a[chunk], r[chunk], w[chunk])
    np.testing.assert_allclose(online.theta, oracle.theta, rtol=1e-10)
    assert feature_map(x, "quadratic").shape == (300, 3 + 6 + 1)


def test_sample_weights():
    r = np.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(sample_weights(r, None, "balanced"), [2 / 3, 2 / 3, 2 / 3, 2.0])
    np.testing.assert_allclose(
        sample_weights(r, np.array([0.5, 0.25, 0.5, 1.0]), "ipw"), np.array([2, 4, 2, 1]) / 2.25
    )
    with pytest.raises(PolicyfitError, match="weighting"):
        sample_weights(r, None, "nope")


# ----------------------------------------------------------------------------- learners
def logged_problem(n=20_000, seed=0):
    """Known truth: q(x, a) = sigmoid(x . w_a); the logger prefers the *worst* action."""
    k, d = 4, 3
    w = np.random.default_rng(123).normal(size=(k, d)) * 1.5  # the same problem for every seed
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    q = 1 / (1 + np.exp(-x @ w.T))
    logits = -3.0 * q
    pi_b = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    a, p = explore.sample_actions(pi_b, rng)
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    return x, a, r, p, q, pi_b


@pytest.mark.parametrize("learner", ["regression", "ipw", "dr"])
def test_learners_beat_the_logger_and_approach_the_optimum(learner):
    x, a, r, p, q, pi_b = logged_problem()
    policy = learn_policy(x, a, r, p, n_actions=4, learner=learner)
    xt, _, _, _, qt, pi_bt = logged_problem(n=20_000, seed=1)
    value = (policy.probs(xt) * qt).sum(1).mean()
    logger, best = (pi_bt * qt).sum(1).mean(), qt.max(1).mean()
    assert value > logger + 0.9 * (best - logger), (value, logger, best)
    np.testing.assert_allclose(policy.action_dist(xt).sum(1), 1.0)


def test_policy_rules_save_and_load(tmp_path):
    policy = LinearPolicy(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])).with_rule("igw", 5.0)
    x = np.array([[0.5, 0.0], [2.0, 1.0]])
    path = policy.save(tmp_path / "p.npz")
    loaded = load_bandit_policy(path)
    np.testing.assert_allclose(loaded.probs(x), policy.probs(x))
    assert loaded.rule == "igw" and loaded.param == 5.0
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PolicyfitError, match="bad.npz: policy: not a policyfit bandit policy"):
        load_bandit_policy(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- generations
def test_naive_retraining_oscillates_and_pooling_does_not():
    """Vangara & Egg's observation: near-greedy IGW over an oracle refit on the last generation
    only gets worse than an earlier generation; pooling every generation's logs does not."""
    out = simulate(
        PaymentEnv(seed=0, effect=2.5),
        ["naive", "pooled"],
        generations=6,
        rounds=6000,
        gamma=10_000,
        seeds=[0, 1],
        progress=False,
    )

    def worst_drop(name):
        m = np.mean(out["variants"][name]["expected_reward"], axis=0)
        return max(max(m[1:g]) - m[g] for g in range(2, len(m)))

    assert worst_drop("naive") > 0.04
    assert worst_drop("pooled") < 0.02
    share = out["variants"]["naive"]["train_positive_share"][0]
    assert share[0] is None and 0.5 < share[1] < share[2]  # labels grow more imbalanced


# ----------------------------------------------------------------------------- online SquareCB
def test_squarecb_stream_oracle_masks_and_uniform_start():
    from policyfit.bandit.online import squarecb_stream

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    q = 1 / (1 + np.exp(-x @ rng.normal(size=(3, 4)) * 2))
    table = (rng.random(q.shape) < q).astype(np.float32)
    mask = np.ones_like(table, dtype=bool)
    mask[::2, 3] = False
    out = squarecb_stream(x, table, mask, seed=1)
    assert not np.any(out["action"][::2] == 3)  # masked actions are never played
    # Sherman-Morrison updates give the batch ridge fit on what was played
    oracle = RidgeOracle(4, 3, l2=1.0).fit(x, out["action"], out["reward"])
    np.testing.assert_allclose(out["theta"], oracle.theta, atol=2e-3)
    best = np.where(mask, q, -np.inf).max(1)[-2000:].mean()
    uniform = (np.where(mask, q, 0).sum(1) / mask.sum(1))[-2000:].mean()
    assert out["reward"][-2000:].mean() > uniform + 0.7 * (best - uniform)
    # gamma 0 is uniform play over the available actions, and the pscores say so
    flat = squarecb_stream(x, table, mask, gamma_scale=0.0, seed=2)
    np.testing.assert_allclose(flat["pscore"], np.where(mask[:, 3], 0.25, 1 / 3), rtol=1e-6)


def test_simulate_cli(tmp_path):
    import json

    from click.testing import CliRunner

    from policyfit.cli.main import cli

    runner = CliRunner()
    args = ["bandit", "simulate", "--generations", "3", "--rounds", "400", "--seeds", "0"]
    result = runner.invoke(
        cli, [*args, "--variants", "naive,uniform", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["variants"]) == {"naive", "uniform"}
    assert (tmp_path / "generations.png").stat().st_size > 1000
    bad = runner.invoke(cli, [*args, "--variants", "nope"])
    assert bad.exit_code == 2 and "unknown variant(s) nope" in bad.output


def test_learn_then_ope_from_the_cli(tmp_path):
    """make-synthetic -> learn -> ope --policy: the learned policy beats the logger, and DR's
    interval covers its true value (known from the synthetic logs)."""
    import json

    from click.testing import CliRunner

    from policyfit.bandit.feedback import load_feedback
    from policyfit.bandit.learn import load_bandit_policy
    from policyfit.cli.main import cli

    runner = CliRunner()
    logs, policy = str(tmp_path / "logs.npz"), str(tmp_path / "policy.npz")
    made = runner.invoke(
        cli,
        [
            "bandit",
            "make-synthetic",
            "--n",
            "20000",
            "--n-actions",
            "5",
            "--beta",
            "-2",
            "--reward-function",
            "logistic",
            "--seed",
            "3",
            "--out",
            logs,
        ],
    )
    assert made.exit_code == 0, made.output
    learned = runner.invoke(cli, ["bandit", "learn", logs, "--learner", "dr", "--out", policy])
    assert learned.exit_code == 0, learned.output
    fb = load_feedback(logs)
    pi = load_bandit_policy(policy).action_dist(fb.context)[:, :, 0]
    truth = float((fb.expected_reward * pi).sum(1).mean())
    logger = float((fb.expected_reward * fb.pi_b[:, :, 0]).sum(1).mean())
    assert truth > logger + 0.1
    ope = runner.invoke(
        cli, ["bandit", "ope", logs, "--policy", policy, "--estimators", "dr,snipw", "--json"]
    )
    assert ope.exit_code == 0, ope.output
    dr = json.loads(ope.output)["dr"]
    assert dr["95.0% CI (lower)"] - 0.01 < truth < dr["95.0% CI (upper)"] + 0.01
    bad = runner.invoke(cli, ["bandit", "learn", logs, "--rule", "igw", "--out", policy])
    assert bad.exit_code == 2 and "rule: expected greedy" in bad.output


def test_falcon_epochs_refit_on_the_previous_epoch_only():
    from policyfit.bandit.online import falcon_stream

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 2))
    table = np.stack([x[:, 0] > 0, x[:, 0] <= 0, np.zeros(5000, bool)], axis=1).astype(float)
    out = falcon_stream(x, table, c=10.0, seed=0)
    assert out["epochs"][:3] == [2, 4, 8] and out["epochs"][-1] == 5000
    np.testing.assert_allclose(out["pscore"][:2], 1 / 3)  # the first epoch plays uniformly
    assert out["reward"][-1000:].mean() > 0.6  # then IGW exploits (uniform play: 1/3)
    paper = falcon_stream(x, table, seed=0)  # c = 1/30: still close to uniform at this horizon
    assert paper["reward"].mean() < out["reward"].mean()
