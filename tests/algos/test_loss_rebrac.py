"""ReBRAC's losses of one update, against Tarasov et al. (2023) evaluated by hand in numpy.

Critic (Eq. 3): ``y = r + gamma (1 - d) [min_i Q'_i(s', a~') - beta_2 ||a~' - a'||^2]`` with
``a~' = clip(pi'(s') + clip(eps, -c, c), -1, 1)`` and ``a'`` the dataset's next action;
``L_Q = sum_i E (Q_i(s, a) - y)^2``, LayerNorm in the critics. Actor (Eq. 2):
``L_pi = E [beta_1 ||pi(s) - a||^2 - min_i Q_i(s, pi(s)) / E|min_i Q_i(s, pi(s))|]``.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.rebrac import ReBRAC, ReBRACConfig

GAMMA = 0.99
BETA_1, BETA_2 = 0.7, 0.3  # different, so that swapping them shows


@pytest.fixture(scope="module")
def case():
    config = ReBRACConfig(
        hidden_dims=(4, 3), actor_bc_coef=BETA_1, critic_bc_coef=BETA_2, policy_noise=0.3
    )
    algo = ReBRAC(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.SPEC, jax.random.PRNGKey(0))
    state = hn.randomize_entries(state, "actor", "actor_target", "critic", "critic_target")
    batch = hn.make_batch(seed=6)
    key = jax.random.PRNGKey(8)
    new_state, metrics = jax.jit(algo.update)(state, batch, key)
    return state, batch, key, new_state, hn.metrics_f64(metrics)


def test_critic_target_carries_the_next_action_penalty(case):
    state, batch, key, _, metrics = case
    # JAX-CORL's default: raw observations (normalize_states=False)
    obs, next_obs = batch["observations"].astype(float), batch["next_observations"].astype(float)
    act = hn.unit_actions(batch["actions"])
    data_next_act = hn.unit_actions(batch["next_actions"])
    noise = np.clip(0.3 * hn.normal_draws(key, act.shape), -0.5, 0.5)
    next_act = np.clip(hn.deterministic_actor(state["actor_target"], next_obs) + noise, -1, 1)
    penalty = np.sum((next_act - data_next_act) ** 2, axis=-1)
    next_q = hn.critics(state["critic_target"], next_obs, next_act, layer_norm_on=True).min(0)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * (next_q - BETA_2 * penalty)
    q = hn.critics(state["critic"], obs, act, layer_norm_on=True)
    expected = np.sum(np.mean((q - y) ** 2, axis=1))
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # without the penalty the loss would differ clearly
    y0 = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * next_q
    assert abs(np.sum(np.mean((q - y0) ** 2, axis=1)) - expected) > 1e-2


def test_actor_loss_is_bc_penalty_minus_normalized_q(case):
    state, batch, _, new_state, metrics = case
    obs, act = batch["observations"].astype(float), hn.unit_actions(batch["actions"])
    pi = hn.deterministic_actor(state["actor"], obs)
    penalty = np.sum((pi - act) ** 2, axis=-1)  # summed over action dimensions
    q = hn.critics(new_state["critic"], obs, pi, layer_norm_on=True).min(0)  # updated critic
    expected = np.mean(BETA_1 * penalty - q / np.mean(np.abs(q)))
    assert metrics["bc_penalty"] == pytest.approx(penalty.mean(), rel=1e-5, abs=1e-5)
    assert metrics["actor_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert BETA_1 * penalty.mean() > 0.1 and abs(q.mean() / np.mean(np.abs(q))) > 0.1
