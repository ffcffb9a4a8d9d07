"""AWAC's losses of one update, against Nair et al. (2020) evaluated by hand in numpy.

Critic: ``y = r + gamma (1 - d) min_i Q'_i(s', a')``, ``a' ~ pi(s')`` clipped to the box,
``L_Q = sum_i E (Q_i(s, a) - y)^2``. Actor (Eq. 12): ``L_pi = -E [log pi(a|s) w]`` with
``w = min(exp(A / lambda), max_weight)``, ``A = min_i Q_i(s, a) - min_i Q_i(s, a_pi)``,
``a_pi ~ pi(s)`` one sample (the authors' and CORL's estimate of ``V(s)``).
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.awac import AWAC, AWACConfig

GAMMA = 0.99
LAMBDA = 0.4  # not 1, so that exp(A / lambda) and exp(A * lambda) differ


def run(max_weight: float):
    algo = AWAC(AWACConfig(hidden_dims=(4, 3), awac_lambda=LAMBDA, max_weight=max_weight))
    state = jax.jit(algo.init, static_argnums=0)(hn.SPEC, jax.random.PRNGKey(0))
    actor = hn.randomize(state["actor"], 1)
    actor["params"]["log_std"] = jax.numpy.array([-0.3, 0.2])  # std 0.74 and 1.22
    state = dict(
        state,
        actor=actor,
        critic=hn.randomize(state["critic"], 2),
        critic_target=hn.randomize(state["critic_target"], 3),
    )
    batch = hn.make_batch(n=8, seed=4)
    key = jax.random.PRNGKey(5)
    new_state, metrics = jax.jit(algo.update)(state, batch, key)
    return state, batch, key, new_state, hn.metrics_f64(metrics)


def hand_weights(state, new_state, batch, key):
    obs, act = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    _, k_actor = jax.random.split(key)  # the update's key use: (critic, actor)
    mean, log_std = hn.gaussian_actor(state["actor"], obs)
    a_pi = np.clip(mean + np.exp(log_std) * hn.normal_draws(k_actor, act.shape), -1, 1)
    q_new = new_state["critic"]  # the actor step follows the critic step
    adv = hn.critics(q_new, obs, act).min(0) - hn.critics(q_new, obs, a_pi).min(0)
    return np.exp(adv / LAMBDA), hn.normal_log_prob(act, mean, log_std)


def test_critic_loss_regresses_onto_the_policys_next_action_value():
    state, batch, key, _, metrics = run(100.0)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    act = hn.unit_actions(batch["actions"])
    k_critic, _ = jax.random.split(key)
    mean, log_std = hn.gaussian_actor(state["actor"], next_obs)
    next_act = np.clip(mean + np.exp(log_std) * hn.normal_draws(k_critic, act.shape), -1, 1)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * hn.critics(
        state["critic_target"], next_obs, next_act
    ).min(0)
    q = hn.critics(state["critic"], obs, act)
    expected = np.sum(np.mean((q - y) ** 2, axis=1))
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q.mean(), rel=1e-5, abs=1e-5)


def test_actor_loss_is_the_advantage_weighted_log_likelihood():
    state, batch, key, new_state, metrics = run(100.0)
    weights, log_prob = hand_weights(state, new_state, batch, key)
    assert weights.max() < 100.0 and weights.std() > 0.1  # unclipped, and not all equal
    assert metrics["adv_weight_mean"] == pytest.approx(weights.mean(), rel=1e-5)
    assert metrics["actor_loss"] == pytest.approx(-np.mean(weights * log_prob), rel=1e-5, abs=1e-5)


def test_weights_are_clipped_at_max_weight():
    state, batch, key, new_state, _ = run(100.0)
    weights, _ = hand_weights(state, new_state, batch, key)
    cap = float(np.median(weights))  # half of the rows above the clip
    state, batch, key, new_state, metrics = run(cap)
    weights, log_prob = hand_weights(state, new_state, batch, key)
    clipped = np.minimum(weights, cap)
    assert metrics["adv_weight_mean"] == pytest.approx(clipped.mean(), rel=1e-5)
    assert metrics["actor_loss"] == pytest.approx(-np.mean(clipped * log_prob), rel=1e-5, abs=1e-5)
