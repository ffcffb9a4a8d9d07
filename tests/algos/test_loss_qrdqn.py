"""QR-DQN's loss of one update against Dabney et al. (2018), Eq. 10, evaluated by hand in numpy.

``u_ij = r + gamma (1 - d) theta'_j(s', a') - theta_i(s, a)``,
``L = mean_b sum_i mean_j |tau_i - 1(u_ij < 0)| Huber_kappa(u_ij) / kappa``, ``tau_i = (2i+1)/2N``
(0-based ``i``), ``a'`` greedy under the mean of the quantiles of ``Q`` (Double) or ``Q'``.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.qrdqn import QRDQN, QRDQNConfig

GAMMA, N, A = 0.9, 4, 3


@pytest.mark.parametrize("double", [False, True])
def test_quantile_huber_loss_of_one_update(double):
    config = QRDQNConfig(hidden_dims=(4, 3), n_quantiles=N, double=double, discount=GAMMA)
    algo = QRDQN(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    state = dict(state, q=hn.randomize(state["q"], 1), q_target=hn.randomize(state["q_target"], 2))
    batch = hn.make_discrete_batch(n=8, seed=5, reward_scale=2.0)
    _, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(7))

    rows = np.arange(8)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    # the head's A * N outputs are laid out action-major: [B, A, N]
    theta = hn.discrete_q(state["q"], obs).reshape(8, A, N)[rows, batch["actions"]]
    next_target = hn.discrete_q(state["q_target"], next_obs).reshape(8, A, N)
    chooser = hn.discrete_q(state["q"] if double else state["q_target"], next_obs)
    a_next = chooser.reshape(8, A, N).mean(axis=2).argmax(axis=1)
    samples = (
        batch["rewards"][:, None]
        + GAMMA * (1 - batch["terminals"][:, None]) * next_target[rows, a_next]
    )
    u = samples[:, None, :] - theta[:, :, None]  # [B, i, j]
    taus = (2 * np.arange(N) + 1) / (2 * N)
    rho = np.abs(taus[None, :, None] - (u < 0)) * hn.huber(u, 1.0)
    expected = rho.mean(axis=2).sum(axis=1).mean()
    assert np.any(np.abs(u) > 1) and np.any(np.abs(u) <= 1)
    assert metrics["q_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(theta.mean(), rel=1e-5, abs=1e-5)


def test_acts_greedily_on_the_mean_of_the_quantiles():
    algo = QRDQN(QRDQNConfig(hidden_dims=(4, 3), n_quantiles=N))
    state = jax.jit(algo.init, static_argnums=0)(hn.DISCRETE_SPEC, jax.random.PRNGKey(0))
    params = dict(algo.policy_params(state), q=hn.randomize(state["q"], 4))
    obs = hn.make_discrete_batch(n=16, seed=9)["observations"]
    actions, _ = algo.act(params, obs, ())
    q = hn.discrete_q(params["q"], hn.norm_obs(obs)).reshape(16, A, N).mean(axis=2)
    np.testing.assert_array_equal(np.asarray(actions), q.argmax(axis=1))
    assert len(set(np.asarray(actions).tolist())) > 1
