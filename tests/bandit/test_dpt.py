"""DPT: the baselines on hand-made histories, shapes, resumable pretraining that learns."""

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.bandit.dpt import (
    DPTConfig,
    baseline_offline,
    baseline_online,
    behavior_histories,
    dpt_offline,
    dpt_online,
    sample_bandits,
    train_dpt,
)

CFG = DPTConfig(n_arms=3, horizon=4, n_layer=1, batch_size=16, steps=2)


def test_offline_baselines_by_hand():
    means = jnp.array([[0.2, 0.5, 0.9]])
    # arm 0 pulled 3x (reward 0.6 each), then arm 2 once (reward 0.7)
    actions = jnp.array([[0, 0, 0, 2]])
    rewards = jnp.array([[0.6, 0.6, 0.6, 0.7]])
    key = jax.random.PRNGKey(0)
    emp = np.asarray(baseline_offline("emp-mean", CFG, means, actions, rewards, key))[0]
    lcb = np.asarray(baseline_offline("lcb", CFG, means, actions, rewards, key))[0]
    # no data: arm 0 (gap 0.7); arm 0 only seen: arm 0; after the 0.7 pull emp-mean takes arm 2
    np.testing.assert_allclose(emp, [0.7, 0.7, 0.7, 0.7, 0.0], atol=1e-6)
    # LCB: arm 0 has 0.6 - 0.8/sqrt(3) = 0.138 > arm 2's 0.7 - 0.8 = -0.1, so it keeps arm 0
    np.testing.assert_allclose(lcb, [0.7, 0.7, 0.7, 0.7, 0.7], atol=1e-6)


def test_online_baselines_pull_every_arm_first_and_learn():
    cfg = DPTConfig(n_arms=3, horizon=300)
    means = jnp.tile(jnp.array([[0.1, 0.3, 0.9]]), (64, 1))
    for name in ("emp-mean", "ucb", "ts"):
        regret = np.asarray(baseline_online(name, cfg, means, jax.random.PRNGKey(1)))
        assert regret.shape == (64, 300)
        assert regret[:, -50:].mean() < 0.05, name  # the best arm is found
    ucb = np.asarray(baseline_online("ucb", cfg, means, jax.random.PRNGKey(1)))
    np.testing.assert_allclose(sorted(ucb[0, :3]), [0.0, 0.6, 0.8], atol=1e-6)  # each arm once


def test_behavior_histories_follow_the_mixture():
    cfg = DPTConfig(horizon=100)
    means = sample_bandits(jax.random.PRNGKey(0), 400, cfg)
    actions, rewards = behavior_histories(jax.random.PRNGKey(1), means, cfg)
    assert actions.shape == rewards.shape == (400, 100)
    residual = np.asarray(rewards - jnp.take_along_axis(means, actions, axis=1))
    assert abs(residual.std() - 0.3) < 0.01  # Gaussian noise 0.3


def test_pretraining_learns():
    cfg = DPTConfig(n_arms=3, horizon=8, n_layer=1, batch_size=64, steps=300, learning_rate=3e-3)
    _, losses = train_dpt(cfg, progress=False, chunk=100)
    # knowing nothing is log(3) = 1.099 (uniform over 3 arms); reading the history beats it
    assert losses[-1] < np.log(3) - 0.08, losses


def test_pretraining_resumes_exactly(tmp_path):
    cfg = DPTConfig(n_arms=3, horizon=4, n_layer=1, batch_size=8, steps=4)
    params, _ = train_dpt(cfg, progress=False, chunk=2)
    short = DPTConfig(**{**cfg.to_dict(), "steps": 2})
    ckpt = tmp_path / "dpt.msgpack"
    train_dpt(short, progress=False, chunk=2, checkpoint=str(ckpt), save_every=2)
    resumed, _ = train_dpt(cfg, progress=False, chunk=2, checkpoint=str(ckpt), save_every=2)
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(resumed), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    means = sample_bandits(jax.random.PRNGKey(5), 4, cfg)
    regret = np.asarray(dpt_online(params, cfg, means, jax.random.PRNGKey(6)))
    assert regret.shape == (4, 4) and (regret >= 0).all()
    acts, rews = behavior_histories(jax.random.PRNGKey(8), means, cfg)
    assert dpt_offline(params, cfg, means, acts, rews).shape == (4, 5)
