"""DQN's and Double DQN's loss of one update, against the equations evaluated by hand in numpy.

``y = r + gamma (1 - d) max_a' Q'(s', a')`` (DQN, Mnih et al. 2015) or
``y = r + gamma (1 - d) Q'(s', argmax_a' Q(s', a'))`` (Double DQN, van Hasselt et al. 2016);
``L = mean_i Huber_kappa(y_i - Q(s_i, a_i))`` with the standard Huber loss (``u^2 / 2`` inside).
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.dqn import DQN, DQNConfig

GAMMA = 0.9


def one_update(double: bool, huber_delta: float = 1.0):
    config = DQNConfig(
        hidden_dims=(4, 3),
        double=double,
        huber_delta=huber_delta,
        discount=GAMMA,
        target_update_period=2,
    )
    algo = DQN(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    state = dict(state, q=hn.randomize(state["q"], 1), q_target=hn.randomize(state["q_target"], 2))
    batch = hn.make_discrete_batch(n=8, seed=5, reward_scale=2.0)
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(7))
    return algo, state, batch, new_state, hn.metrics_f64(metrics)


def hand_targets(state, batch, double: bool):
    next_obs = hn.norm_obs(batch["next_observations"])
    q_next_target = hn.discrete_q(state["q_target"], next_obs)
    if double:
        a_next = hn.discrete_q(state["q"], next_obs).argmax(axis=1)
        next_value = q_next_target[np.arange(len(a_next)), a_next]
    else:
        next_value = q_next_target.max(axis=1)
    return batch["rewards"] + GAMMA * (1 - batch["terminals"]) * next_value


@pytest.mark.parametrize(("double", "delta"), [(False, 1.0), (True, 1.0), (True, 2.0)])
def test_td_loss_is_the_huber_regression_onto_the_dqn_target(double, delta):
    _, state, batch, _, metrics = one_update(double, delta)
    q = hn.discrete_q(state["q"], hn.norm_obs(batch["observations"]))
    q_taken = q[np.arange(len(batch["actions"])), batch["actions"]]
    u = hand_targets(state, batch, double) - q_taken
    # both branches of the Huber loss are exercised
    assert np.any(np.abs(u) <= delta) and np.any(np.abs(u) > delta)
    expected = np.mean(hn.huber(u, delta))
    assert metrics["q_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q_taken.mean(), rel=1e-5, abs=1e-5)


def test_double_and_plain_targets_differ_on_this_batch():
    # the online and target networks disagree on a' somewhere, so the two tests above are distinct
    _, state, batch, _, _ = one_update(True)
    assert not np.allclose(hand_targets(state, batch, True), hand_targets(state, batch, False))


def test_target_network_is_copied_every_period_updates_and_acting_is_greedy():
    algo, state, batch, new_state, _ = one_update(True)
    # step 1 of period 2: Q' unchanged; step 2: Q' is the online network after that update
    hn.assert_trees_close(new_state["q_target"], state["q_target"], rtol=0, atol=0)
    assert hn.trees_differ(new_state["q"], state["q"])
    later, _ = jax.jit(algo.update)(new_state, batch, jax.random.PRNGKey(8))
    hn.assert_trees_close(later["q_target"], later["q"], rtol=0, atol=0)
    obs = batch["observations"]
    actions, carry = algo.act(algo.policy_params(state), obs, ())
    expected = hn.discrete_q(state["q"], hn.norm_obs(obs)).argmax(axis=1)
    np.testing.assert_array_equal(np.asarray(actions), expected)
    assert carry == () and np.asarray(actions).dtype == np.int32
