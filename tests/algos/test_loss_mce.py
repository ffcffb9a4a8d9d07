"""MCE's loss of one update and the returns it regresses on, evaluated by hand in numpy.

``G_t = sum_k gamma^k r_{t+k}`` to the end of the logged episode (a terminal or a time-limit cut),
``L = mean Huber_1(G_t - Q(s_t, a_t))`` (Schweighofer et al. 2022's ``nn.SmoothL1Loss``);
greedy acting.
"""

import handnets as hn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_loss_bcq_discrete import N_ACTIONS, SPEC, head, huber

from policyfit.algos.mce import MCE, MCEConfig
from policyfit.data import Dataset

GAMMA = 0.9
ROWS = np.arange(8)


def net(params, obs):
    return head(hn.f64(params)["params"], obs)


def window_batch(seed: int, n: int = 8) -> dict[str, np.ndarray]:
    """A trajectory-sampler batch of one-step windows, ``[n, 1, ...]``."""
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(0.5, 2.0, size=(n, 1, 2)).astype(np.float32),
        "actions": rng.integers(0, N_ACTIONS, size=(n, 1)).astype(np.int64),
        # returns of a few units: some errors fall in Huber's linear part, some in the quadratic
        "returns_to_go": rng.normal(0.0, 2.0, size=(n, 1)).astype(np.float32),
        "rewards": rng.normal(size=(n, 1)).astype(np.float32),
        "mask": np.ones((n, 1), np.float32),
    }


def test_loss_is_huber_of_the_return_to_go_minus_q_of_the_logged_action():
    algo = MCE(MCEConfig(hidden_dims=(5, 4), discount=GAMMA))
    state = jax.jit(algo.init, static_argnums=0)(SPEC, jax.random.PRNGKey(0))
    assert "q_target" not in state  # nothing bootstraps: no target network
    state = dict(state, q=hn.randomize(state["q"], 1))
    batch = window_batch(seed=4)
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(0))
    metrics = hn.metrics_f64(metrics)
    obs = hn.norm_obs(batch["observations"][:, 0])
    actions, returns = batch["actions"][:, 0], batch["returns_to_go"][:, 0].astype(np.float64)
    q_sa = net(state["q"], obs)[ROWS, actions]
    err = returns - q_sa
    assert np.any(np.abs(err) > 1.0) and np.any(np.abs(err) < 1.0)  # both Huber branches
    assert metrics["q_loss"] == pytest.approx(np.mean(huber(err)), rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q_sa.mean(), rel=1e-5, abs=1e-5)
    assert metrics["return_mean"] == pytest.approx(returns.mean(), rel=1e-5, abs=1e-5)
    assert int(new_state["step"]) == 1
    # greedy in Q: argmax_a Q(s, a) of the hand network
    acted, _ = algo.act(algo.policy_params(state), jnp.asarray(batch["observations"][:, 0]), ())
    np.testing.assert_array_equal(np.asarray(acted), np.argmax(net(state["q"], obs), axis=-1))


def test_returns_are_discounted_per_episode_and_a_time_limit_cut_ends_the_sum():
    # episode 1: steps 0-2, cut by the time limit; episode 2: steps 3-4, ends in a terminal
    rewards = np.array([1.0, 2.0, 4.0, 8.0, 16.0], np.float32)
    terminals = np.array([0, 0, 0, 0, 1], bool)
    timeouts = np.array([0, 0, 1, 0, 0], bool)
    obs = np.repeat(np.arange(5, dtype=np.float32)[:, None], 2, axis=1)  # obs i encodes i
    ds = Dataset(
        observations=obs,
        actions=np.array([0, 1, 2, 3, 0], np.int64),
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        next_observations=obs + 0.5,
        metadata={"action_space": {"type": "discrete", "n": N_ACTIONS}},
    )
    algo = MCE(MCEConfig(discount=GAMMA))
    sampler = algo.make_sampler(ds, SPEC)
    batch = sampler.sample(sampler.data, jax.random.PRNGKey(0), 256)
    index = np.asarray(batch["observations"][:, 0, 0]).astype(int)
    assert set(index) == set(range(5))
    expected = {
        0: 1.0 + 0.9 * 2.0 + 0.81 * 4.0,  # 6.04: nothing of episode 2 leaks past the cut
        1: 2.0 + 0.9 * 4.0,
        2: 4.0,
        3: 8.0 + 0.9 * 16.0,
        4: 16.0,
    }
    got = np.asarray(batch["returns_to_go"][:, 0])
    np.testing.assert_allclose(got, [expected[i] for i in index], rtol=1e-6)
