"""BVE's loss of one update, against the SARSA target evaluated by hand in numpy.

``y = r + gamma (1 - d) Q'(s', a'_logged)``, ``L = Huber_1(y - Q(s, a))``; greedy acting.
"""

import handnets as hn
import jax
import numpy as np
import pytest
from test_loss_bcq_discrete import N_ACTIONS, SPEC, head, huber, make_batch

from policyfit.algos.bve import BVE, BVEConfig

GAMMA = 0.9
ROWS = np.arange(8)


def net(params, obs):
    return head(hn.f64(params)["params"], obs)


def test_loss_is_huber_td_on_the_logged_next_action():
    algo = BVE(BVEConfig(hidden_dims=(5, 4), discount=GAMMA))
    state = jax.jit(algo.init, static_argnums=0)(SPEC, jax.random.PRNGKey(0))
    state = dict(state, q=hn.randomize(state["q"], 1), q_target=hn.randomize(state["q"], 2))
    batch = make_batch(seed=6)
    batch["next_actions"] = np.random.default_rng(9).integers(0, N_ACTIONS, size=8)
    _, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(0))
    metrics = hn.metrics_f64(metrics)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    q_next = net(state["q_target"], next_obs)
    # the logged a' is not the greedy one on some rows (a max target would differ)
    assert np.any(batch["next_actions"] != np.argmax(q_next, axis=-1))
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * q_next[ROWS, batch["next_actions"]]
    q_sa = net(state["q"], obs)[ROWS, batch["actions"]]
    assert metrics["q_loss"] == pytest.approx(np.mean(huber(y - q_sa)), rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q_sa.mean(), rel=1e-5, abs=1e-5)
