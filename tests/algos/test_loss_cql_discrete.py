"""Discrete CQL's loss of one update, evaluated by hand in numpy:
``L = mean Huber_1(y - Q(s, a)) + alpha mean(logsumexp_a' Q(s, a') - Q(s, a))`` with the
Double-DQN target ``y = r + gamma (1 - d) Q'(s', argmax Q(s', .))``.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.cql_discrete import DiscreteCQL, DiscreteCQLConfig

GAMMA, ALPHA = 0.9, 0.7


def test_cql_loss_is_td_plus_alpha_times_the_logsumexp_penalty():
    config = DiscreteCQLConfig(hidden_dims=(4, 3), discount=GAMMA, cql_alpha=ALPHA)
    algo = DiscreteCQL(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    state = dict(state, q=hn.randomize(state["q"], 1), q_target=hn.randomize(state["q_target"], 2))
    batch = hn.make_discrete_batch(n=8, seed=5, reward_scale=2.0)
    _, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(7))
    metrics = hn.metrics_f64(metrics)

    rows = np.arange(8)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    q_all = hn.discrete_q(state["q"], obs)
    q = q_all[rows, batch["actions"]]
    a_next = hn.discrete_q(state["q"], next_obs).argmax(axis=1)
    y = (
        batch["rewards"]
        + GAMMA
        * (1 - batch["terminals"])
        * hn.discrete_q(state["q_target"], next_obs)[rows, a_next]
    )
    td = np.mean(hn.huber(y - q))
    m = q_all.max(axis=1)
    penalty = np.mean(m + np.log(np.exp(q_all - m[:, None]).sum(axis=1)) - q)
    assert penalty > 0.1
    assert metrics["td_loss"] == pytest.approx(td, rel=1e-5, abs=1e-5)
    assert metrics["cql_penalty"] == pytest.approx(penalty, rel=1e-5, abs=1e-5)
    assert metrics["q_loss"] == pytest.approx(td + ALPHA * penalty, rel=1e-5, abs=1e-5)
