"""Discrete CRR's losses of one update, against Wang et al. (2020) evaluated by hand in numpy.

Critic: ``y = r + gamma (1 - d) sum_a' pi'(a'|s') Q'(s', a')``, ``L_Q = Huber_1(y - Q(s, a))``.
Actor (with the updated critic): ``A = Q(s, a) - sum_a' pi(a'|s) Q(s, a')``,
``L_pi = -mean f log pi(a|s)`` with ``f = min(exp(A / beta), 20)`` or ``f = 1[A > 0]``.
"""

import handnets as hn
import jax
import numpy as np
import pytest
from test_loss_bcq_discrete import SPEC, head, huber, log_softmax, make_batch

from policyfit.algos.crr import CRR, CRRConfig
from policyfit.errors import ConfigError

GAMMA = 0.9
ROWS = np.arange(8)


def net(params, obs):
    return head(hn.f64(params)["params"], obs)


def run(weight_type: str, beta: float = 0.05):
    algo = CRR(CRRConfig(hidden_dims=(5, 4), discount=GAMMA, weight_type=weight_type, beta=beta))
    state = jax.jit(algo.init, static_argnums=0)(SPEC, jax.random.PRNGKey(0))
    state = dict(
        state,
        q=hn.randomize(state["q"], 1),
        q_target=hn.randomize(state["q"], 2),
        actor=hn.randomize(state["actor"], 3, scale=1.2),
        actor_target=hn.randomize(state["actor"], 4, scale=1.2),
    )
    batch = make_batch(seed=5)
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(7))
    return state, batch, new_state, hn.metrics_f64(metrics)


@pytest.fixture(scope="module")
def exp_case():
    return run("exp")


def test_critic_regresses_on_the_expectation_under_the_target_policy(exp_case):
    state, batch, _, metrics = exp_case
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    pi_next = np.exp(log_softmax(net(state["actor_target"], next_obs)))
    v_next = np.sum(pi_next * net(state["q_target"], next_obs), axis=-1)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * v_next
    q_sa = net(state["q"], obs)[ROWS, batch["actions"]]
    assert metrics["q_loss"] == pytest.approx(np.mean(huber(y - q_sa)), rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q_sa.mean(), rel=1e-5, abs=1e-5)


def advantages(state, new_state, batch):
    obs = hn.norm_obs(batch["observations"])
    q = net(new_state["q"], obs)  # the actor step sees the critic after its step
    log_pi = log_softmax(net(state["actor"], obs))
    adv = q[ROWS, batch["actions"]] - np.sum(np.exp(log_pi) * q, axis=-1)
    return adv, log_pi[ROWS, batch["actions"]]


def test_actor_loss_is_exp_weighted_likelihood_clipped_at_20(exp_case):
    state, batch, new_state, metrics = exp_case
    adv, log_pi_a = advantages(state, new_state, batch)
    weight = np.minimum(np.exp(adv / 0.05), 20.0)
    assert np.any(weight == 20.0) and np.any(weight < 1.0)  # the clip and the down-weighting bite
    assert metrics["mean_weight"] == pytest.approx(weight.mean(), rel=1e-5, abs=1e-5)
    assert metrics["actor_loss"] == pytest.approx(-np.mean(weight * log_pi_a), rel=1e-5, abs=1e-5)


def test_actor_loss_binary_filter_keeps_positive_advantages():
    state, batch, new_state, metrics = run("binary")
    adv, log_pi_a = advantages(state, new_state, batch)
    weight = (adv > 0).astype(float)
    assert 0 < weight.sum() < len(weight)
    assert metrics["mean_weight"] == pytest.approx(weight.mean(), rel=1e-6)
    assert metrics["actor_loss"] == pytest.approx(-np.mean(weight * log_pi_a), rel=1e-5, abs=1e-5)


def test_targets_are_copied_every_period_and_the_policy_is_the_actors_argmax(exp_case):
    state, _, new_state, _ = exp_case
    # step 1 of a 100-update period: the targets are unchanged
    hn.assert_trees_close(new_state["q_target"], state["q_target"], rtol=0, atol=0)
    hn.assert_trees_close(new_state["actor_target"], state["actor_target"], rtol=0, atol=0)
    algo = CRR(CRRConfig(hidden_dims=(5, 4)))
    algo.setup(SPEC)
    obs = np.random.default_rng(0).normal(0.5, 2.0, size=(16, 2)).astype(np.float32)
    actions, _ = algo.act(algo.policy_params(state), obs, ())
    want = np.argmax(net(state["actor"], hn.norm_obs(obs)), axis=-1)
    np.testing.assert_array_equal(np.asarray(actions), want)


def test_bad_filter_is_a_config_error():
    with pytest.raises(ConfigError, match="weight_type.*valid: exp, binary"):
        CRR(CRRConfig(weight_type="max")).setup(SPEC)
