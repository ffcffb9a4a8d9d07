"""REM's loss of one update against Agarwal et al. (2020), Eq. 6, evaluated by hand in numpy.

``alpha = u / sum(u)``, ``u ~ U(0, 1)^K`` from the update's key; ``Q_alpha = sum_k alpha_k Q_k``;
``y = r + gamma (1 - d) Q'_alpha(s', a')``, ``a'`` greedy under ``Q'_alpha`` (or ``Q_alpha`` with
``double``); ``L = mean Huber_1(y - Q_alpha(s, a))``.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.rem import REM, REMConfig

GAMMA, K, A = 0.9, 4, 3


@pytest.mark.parametrize("double", [False, True])
def test_rem_loss_of_one_update(double):
    algo = REM(REMConfig(hidden_dims=(4, 3), n_heads=K, double=double, discount=GAMMA))
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    state = dict(state, q=hn.randomize(state["q"], 1), q_target=hn.randomize(state["q_target"], 2))
    batch = hn.make_discrete_batch(n=8, seed=5, reward_scale=2.0)
    key = jax.random.PRNGKey(7)
    _, metrics = jax.jit(algo.update)(state, batch, key)

    u = np.asarray(jax.random.uniform(key, (K,)), np.float64)
    alphas = u / u.sum()
    rows = np.arange(8)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])

    def mixed(params, x):  # the head's K * A outputs are laid out head-major: [B, K, A]
        return np.einsum("bka,k->ba", hn.discrete_q(params, x).reshape(len(x), K, A), alphas)

    q_next = mixed(state["q_target"], next_obs)
    a_next = (mixed(state["q"], next_obs) if double else q_next).argmax(axis=1)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * q_next[rows, a_next]
    q = mixed(state["q"], obs)[rows, batch["actions"]]
    assert np.any(np.abs(y - q) > 1) and np.any(np.abs(y - q) <= 1)
    assert metrics["q_loss"] == pytest.approx(np.mean(hn.huber(y - q)), rel=1e-5, abs=1e-5)
    # the mixture is not the plain mean of the heads (which would hide a missing draw)
    mean_q = hn.discrete_q(state["q"], obs).reshape(8, K, A).mean(axis=1)[rows, batch["actions"]]
    assert metrics["q_mean"] == pytest.approx(q.mean(), rel=1e-5, abs=1e-5)
    assert abs(q.mean() - mean_q.mean()) > 1e-3


def test_acts_greedily_on_the_mean_of_the_heads():
    algo = REM(REMConfig(hidden_dims=(4, 3), n_heads=K))
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    params = dict(algo.policy_params(state), q=hn.randomize(state["q"], 4))
    obs = hn.make_discrete_batch(n=16, seed=9)["observations"]
    actions, _ = algo.act(params, obs, ())
    q = hn.discrete_q(params["q"], hn.norm_obs(obs)).reshape(16, K, A).mean(axis=1)
    np.testing.assert_array_equal(np.asarray(actions), q.argmax(axis=1))
