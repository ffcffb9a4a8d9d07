"""Fitted Q Evaluation recovers hand-computed values on tiny MDPs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from policyfit.data import Dataset
from policyfit.evaluation.ope import (
    FQEConfig,
    _fit_interval,
    _length_from_discounted,
    fitted_q_evaluation,
)

GAMMA = 0.9


def two_state_dataset(episodes: int = 100, length: int = 20, seed: int = 0) -> Dataset:
    """States 0 and 1 (one-hot), action a in [-1, 1]; s' = 1 if a > 0 else 0;
    r(s, a) = 1[s = 1] - 0.5 a^2. Episodes start in state 0 and are cut by time limits (no
    terminal), so FQE's bootstrapped value is the infinite-horizon discounted value.
    Behavior: uniform random actions."""
    rng = np.random.default_rng(seed)
    obs, act, rew, nxt = [], [], [], []
    for _ in range(episodes):
        s = 0
        for _ in range(length):
            a = rng.uniform(-1.0, 1.0)
            s2 = int(a > 0)
            obs.append(np.eye(2)[s])
            act.append([a])
            rew.append(float(s == 1) - 0.5 * a * a)
            nxt.append(np.eye(2)[s2])
            s = s2
    n = len(rew)
    timeouts = (np.arange(n) % length) == length - 1
    return Dataset(
        observations=np.array(obs, np.float32),
        actions=np.array(act, np.float32),
        rewards=np.array(rew, np.float32),
        terminals=np.zeros(n, bool),
        timeouts=timeouts,
        next_observations=np.array(nxt, np.float32),
        source="two-state",
    )


def always(a: float):
    return lambda obs: jnp.full((obs.shape[0], 1), a, jnp.float32)


def alternate(obs):
    # +0.5 in state 0 (go to 1), -0.5 in state 1 (go back to 0): jax-traceable.
    return jnp.where(obs[:, :1] > 0.5, 0.5, -0.5)


CONFIG = FQEConfig(
    discount=GAMMA,
    iterations=3_000,
    target_update_every=50,  # 60 FQE iterations: gamma^60 < 0.002
    batch_size=128,
    learning_rate=1e-3,
    hidden_dims=(32, 32),
    bootstrap=2,
    fuse=500,
)


@pytest.mark.parametrize(
    ("policy", "value"),
    [
        # s0 = 0 then state 1 forever: sum_{t>=1} gamma^t - 0.125 / (1 - gamma) = 9 - 1.25
        (always(0.5), GAMMA / (1 - GAMMA) - 0.125 / (1 - GAMMA)),
        # 0, 1, 0, 1, ...: gamma / (1 - gamma^2) - 1.25 = 4.7368 - 1.25
        (alternate, GAMMA / (1 - GAMMA**2) - 0.125 / (1 - GAMMA)),
        # never leaves state 0: -1.25
        (always(-0.5), -0.125 / (1 - GAMMA)),
    ],
)
def test_fqe_recovers_the_discounted_value_of_known_policies(policy, value):
    res = fitted_q_evaluation(two_state_dataset(), policy, config=CONFIG, seed=0, horizon=20)
    assert res.value == pytest.approx(value, abs=0.25)
    assert res.value_ci[0] - 0.25 <= value <= res.value_ci[1] + 0.25
    # No terminals: the discounted length is 1 / (1 - gamma) and the length estimate the horizon.
    assert res.discounted_length == pytest.approx(1 / (1 - GAMMA), abs=0.6)
    assert len(res.fit_values) == 3
    assert res.in_bounds and res.value_bounds == pytest.approx((-5.0, 10.0), abs=0.05)
    assert res.normalized_score is None


def test_terminals_stop_bootstrapping_and_numpy_policies_work():
    # Every transition is terminal with r = a: J = pi(s0) exactly, the length is 1.
    rng = np.random.default_rng(1)
    n = 600
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    ds = Dataset(
        observations=obs,
        actions=act,
        rewards=act[:, 0].copy(),
        terminals=np.ones(n, bool),
        next_observations=obs[::-1].copy(),
        metadata={"ref_min_score": 0.0, "ref_max_score": 1.0},
    )
    cfg = FQEConfig(
        discount=0.99, iterations=1_000, target_update_every=100, batch_size=128,
        learning_rate=1e-3, hidden_dims=(32, 32), bootstrap=0, fuse=500,
    )  # fmt: skip
    res = fitted_q_evaluation(ds, lambda o: np.full((len(o), 1), 0.7, np.float32), config=cfg)
    assert res.value == pytest.approx(0.7, abs=0.08)
    assert res.episode_length == pytest.approx(1.0, abs=0.1)
    assert res.return_estimate == pytest.approx(0.7, abs=0.1)
    assert res.normalized_score == pytest.approx(70.0, abs=10.0)


def test_length_from_discounted_length():
    g = 0.99
    for t in (1, 10, 100, 300):
        assert _length_from_discounted((1 - g**t) / (1 - g), g, 1000) == pytest.approx(t)
    assert _length_from_discounted(1 / (1 - g), g, 1000) == 1000


def test_fit_interval_holds_the_full_data_estimate():
    assert _fit_interval(np.array([5.0]), 0.95) == (5.0, 5.0)
    lo, hi = _fit_interval(np.array([1.0, 2.0, 3.0, 4.0]), 0.95)
    assert 1.0 == lo < 2.1 and 3.9 < hi <= 4.0
    assert _fit_interval(np.array([10.0, 2.0, 3.0]), 0.95)[1] == 10.0
