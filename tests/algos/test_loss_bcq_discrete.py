"""Discrete BCQ's loss of one update, against Fujimoto et al. (2019) evaluated by hand in numpy.

``A(s') = {a : G(a|s') / max G(.|s') > tau}``, ``a' = argmax_{A(s')} Q(s', .)`` (online network),
``y = r + gamma (1 - d) Q'(s', a')``, ``L = Huber_1(y - Q(s, a)) - log G(a|s) + 0.01 mean(logits^2)``;
the policy is the same constrained argmax.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.base import DatasetSpec
from policyfit.algos.bcq_discrete import DiscreteBCQ, DiscreteBCQConfig
from policyfit.errors import ConfigError

GAMMA = 0.99
N_ACTIONS = 4
SPEC = DatasetSpec(
    observation_dim=2, action_dim=N_ACTIONS, discrete=True, obs_mean=(0.5, -1.0), obs_std=(2.0, 0.5)
)


def make_batch(n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, np.float32)
    terminals[1] = 1.0
    return {
        "observations": rng.normal(0.5, 2.0, size=(n, 2)).astype(np.float32),
        "actions": rng.integers(0, N_ACTIONS, size=n).astype(np.int64),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "next_observations": rng.normal(0.5, 2.0, size=(n, 2)).astype(np.float32),
    }


def head(p, x):
    """An MLP torso (ReLU after every layer) and a linear head, float64."""
    return hn.mlp(p["MLP_0"], x) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]


def q_and_logits(params, obs):
    p = hn.f64(params)["params"]
    return head(p["q"], obs), head(p["behavior"], obs)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def constrained_argmax(params, obs, threshold):
    q, logits = q_and_logits(params, obs)
    probs = np.exp(log_softmax(logits))
    allowed = probs / probs.max(-1, keepdims=True) > threshold
    return np.argmax(np.where(allowed, q, -np.inf), axis=-1), allowed


def huber(u):
    return np.where(np.abs(u) <= 1.0, 0.5 * u**2, np.abs(u) - 0.5)


def make_state(algo, scale=0.8):
    state = jax.jit(algo.init, static_argnums=0)(SPEC, jax.random.PRNGKey(0))
    return dict(state, q=hn.randomize(state["q"], 1, scale), q_target=hn.randomize(state["q"], 2))


@pytest.fixture(scope="module")
def case():
    algo = DiscreteBCQ(DiscreteBCQConfig(hidden_dims=(5, 4), discount=GAMMA))
    state = make_state(algo)
    batch = make_batch(seed=3)
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(7))
    return algo, state, batch, new_state, hn.metrics_f64(metrics)


def test_loss_is_huber_td_with_the_constrained_argmax_plus_imitation(case):
    _, state, batch, _, metrics = case
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    a_next, allowed = constrained_argmax(state["q"], next_obs, 0.3)
    q_next_online, _ = q_and_logits(state["q"], next_obs)
    # the mask is exercised: some actions are excluded and it changes some a'
    assert not allowed.all()
    assert np.any(a_next != np.argmax(q_next_online, axis=-1))
    q_target_next, _ = q_and_logits(state["q_target"], next_obs)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * q_target_next[np.arange(8), a_next]
    q, logits = q_and_logits(state["q"], obs)
    q_sa = q[np.arange(8), batch["actions"]]
    td = np.mean(huber(y - q_sa))
    nll = -np.mean(log_softmax(logits)[np.arange(8), batch["actions"]])
    penalty = 0.01 * np.mean(logits**2)
    assert np.any(np.abs(y - q_sa) > 1) and np.any(np.abs(y - q_sa) < 1)  # both Huber branches
    assert metrics["td_loss"] == pytest.approx(td, rel=1e-5, abs=1e-5)
    assert metrics["imitation_loss"] == pytest.approx(nll, rel=1e-5, abs=1e-5)
    assert metrics["q_loss"] == pytest.approx(td + nll + penalty, rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q_sa.mean(), rel=1e-5, abs=1e-5)


def test_target_is_a_polyak_average_of_q_and_g(case):
    algo, state, _, new_state, _ = case
    tau = algo.config.target_tau
    assert tau == 0.005
    expected = jax.tree_util.tree_map(
        lambda t, o: tau * np.asarray(o) + (1 - tau) * np.asarray(t),
        state["q_target"],
        new_state["q"],
    )
    hn.assert_trees_close(new_state["q_target"], expected)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.999])
def test_threshold_masks_actions_from_the_policy(threshold):
    # logits scale 3: G is peaked enough that the mask bites on many states
    algo = DiscreteBCQ(DiscreteBCQConfig(hidden_dims=(5, 4), threshold=threshold))
    state = make_state(algo, scale=1.5)
    obs = np.random.default_rng(4).normal(0.5, 2.0, size=(64, 2)).astype(np.float32)
    actions, carry = algo.act(algo.policy_params(state), obs, ())
    assert carry == () and actions.dtype == np.int32
    want, _ = constrained_argmax(state["q"], hn.norm_obs(obs), threshold)
    np.testing.assert_array_equal(np.asarray(actions), want)
    q, logits = q_and_logits(state["q"], hn.norm_obs(obs))
    greedy_q, greedy_g = np.argmax(q, -1), np.argmax(logits, -1)
    assert np.mean(greedy_q != greedy_g) > 0.2  # the two extremes differ on these states
    if threshold == 0.0:  # every action allowed: Double DQN's greedy policy
        np.testing.assert_array_equal(np.asarray(actions), greedy_q)
    if threshold == 0.999:  # only the behavior's most likely action: behavior cloning
        np.testing.assert_array_equal(np.asarray(actions), greedy_g)
    if threshold == 0.3:
        assert 0 < np.mean(np.asarray(actions) != greedy_q) < np.mean(greedy_q != greedy_g)


def test_bad_threshold_is_a_config_error():
    with pytest.raises(ConfigError, match="threshold.*must lie in \\[0, 1\\)"):
        DiscreteBCQ(DiscreteBCQConfig(threshold=1.0)).setup(SPEC)
    with pytest.raises(ConfigError, match="target_tau"):
        DiscreteBCQ(DiscreteBCQConfig(target_tau=0.0)).setup(SPEC)
