"""IQL's losses of one update, and Robust IQL's flags, against the papers evaluated by hand.

IQL (Kostrikov et al. 2021): value ``L_V = E L_tau(Q'(s, a) - V(s))`` with ``Q'`` the minimum
over the target critics (Eq. 5); critics ``L_Q = mean_i E (r + gamma (1 - d) V(s') - Q_i(s, a))^2``
(Eq. 6); actor ``L_pi = -E [min(exp(beta A), 100) log pi(a|s)]`` (Eq. 7).

Robust IQL (Yang et al. 2024) changes two of them: ``Q'`` is the ``alpha``-quantile over a
``K``-critic ensemble (Eq. 7 of that paper) and the critic loss is Huber with threshold
``delta`` (Eq. 8). A run that ignored ``value_quantile`` or ``huber_delta`` would fail here.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.iql import IQL, IQLConfig

GAMMA, TAU, BETA, K = 0.99, 0.7, 3.0, 5


def run(**flags):
    # n_critics = 5 for every variant, so that all start from the same state
    config = IQLConfig(hidden_dims=(4, 3), n_critics=K, reward_normalization="none", **flags)
    algo = IQL(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.SPEC, jax.random.PRNGKey(0))
    actor = hn.randomize(state["actor"], 1)
    actor["params"]["log_std"] = jax.numpy.array([-0.4, 0.1])
    state = dict(
        state,
        actor=actor,
        critic=hn.randomize(state["critic"], 2),
        critic_target=hn.randomize(state["critic_target"], 3),
        value=hn.randomize(state["value"], 4),
    )
    batch = hn.make_batch(n=8, seed=5, reward_scale=3.0)  # TD errors on both sides of delta
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(6))
    return state, batch, new_state, hn.metrics_f64(metrics)


def expectile(u, tau):
    return np.where(u > 0, tau, 1 - tau) * u**2


def huber(u, delta):
    return np.where(np.abs(u) <= delta, u**2 / (2 * delta), np.abs(u) - delta / 2)


def hand_losses(state, batch, value_quantile=None, huber_delta=None, target_clip=None):
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    act = hn.unit_actions(batch["actions"])
    q_target = np.sort(hn.critics(state["critic_target"], obs, act), axis=0)  # [K, B], sorted
    if value_quantile is None:
        reduced = q_target[0]  # the minimum
    else:  # linear interpolation at position alpha (K - 1) of the sorted ensemble
        pos = value_quantile * (K - 1)
        lo = int(np.floor(pos))
        reduced = q_target[lo] + (pos - lo) * (q_target[min(lo + 1, K - 1)] - q_target[lo])
    adv = reduced - hn.value(state["value"], obs)
    value_loss = expectile(adv, TAU).mean()

    # the TD target uses V before this update's value step
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * hn.value(state["value"], next_obs)
    unclipped = y
    if target_clip is not None:
        y = np.clip(y, *target_clip)
    diff = hn.critics(state["critic"], obs, act) - y
    critic_loss = (diff**2 if huber_delta is None else huber(diff, huber_delta)).mean()

    mean, log_std = hn.gaussian_actor(state["actor"], obs)
    weights = np.minimum(np.exp(BETA * adv), 100.0)
    actor_loss = np.mean(-weights * hn.normal_log_prob(act, mean, log_std))
    losses = {"value_loss": value_loss, "critic_loss": critic_loss, "actor_loss": actor_loss}
    return losses, diff, unclipped


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"value_quantile": 0.25},
        {"value_quantile": 0.1},
        {"huber_delta": 0.7},
        {"value_quantile": 0.25, "huber_delta": 1.0, "target_clip": (-1.0, 1.5)},
    ],
    ids=["iql", "quantile-0.25", "quantile-0.1", "huber", "riql"],
)
def test_losses_match_the_equations(flags):
    state, batch, _, metrics = run(**flags)
    expected, diff, y = hand_losses(state, batch, **flags)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-5, abs=1e-5), name
    if "huber_delta" in flags:  # both branches of the Huber loss are exercised
        assert np.any(np.abs(diff) < flags["huber_delta"])
        assert np.any(np.abs(diff) > flags["huber_delta"])
    if "target_clip" in flags:  # some targets are clipped, some not
        low, high = flags["target_clip"]
        assert np.any((y < low) | (y > high)) and np.any((y > low) & (y < high))


def test_quantile_and_huber_flags_change_the_update():
    state, batch, plain, plain_metrics = run()
    _, _, quantile, quantile_metrics = run(value_quantile=0.25)
    _, _, robust, robust_metrics = run(huber_delta=1.0)
    # the value target changes V's step only; the critics regress onto V before that step
    assert hn.trees_differ(quantile["value"], plain["value"])
    hn.assert_trees_close(quantile["critic"], plain["critic"], rtol=0, atol=0)
    assert quantile_metrics["value_loss"] != pytest.approx(plain_metrics["value_loss"])
    # the Huber loss changes the critics' step only
    assert hn.trees_differ(robust["critic"], plain["critic"])
    hn.assert_trees_close(robust["value"], plain["value"], rtol=0, atol=0)
    assert robust_metrics["critic_loss"] != pytest.approx(plain_metrics["critic_loss"])
    # and the quantile feeds the actor's advantage weights too
    assert quantile_metrics["actor_loss"] != pytest.approx(plain_metrics["actor_loss"])


def test_n_critics_sizes_the_ensemble_and_the_minimum_runs_over_all_of_them():
    state, batch, _, metrics = run()
    assert all(leaf.shape[0] == K for leaf in jax.tree_util.tree_leaves(state["critic"]))
    obs, act = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    q = hn.critics(state["critic_target"], obs, act)
    v = hn.value(state["value"], obs)
    # the minimum over two critics only would give another value loss
    assert expectile(q.min(0) - v, TAU).mean() == pytest.approx(metrics["value_loss"], rel=1e-5)
    assert expectile(q[:2].min(0) - v, TAU).mean() != pytest.approx(metrics["value_loss"], rel=1e-3)
