"""Vectorized rollouts: returns match a plain gymnasium loop; normalized scores use D4RL refs."""

import gymnasium as gym
import numpy as np
import pytest

from pendulum_data import swing_up
from policyfit.evaluation.rollout import evaluate, rollout_returns


def test_vectorized_returns_equal_sequential_episodes():
    returns, lengths = rollout_returns(swing_up, "Pendulum-v1", episodes=3, seed=7, max_envs=2)
    expected = []
    env = gym.make("Pendulum-v1")
    for i in range(3):
        obs, _ = env.reset(seed=7 + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(swing_up(obs))
            total += r
            done = term or trunc
        expected.append(total)
    np.testing.assert_allclose(returns, expected, rtol=1e-9)
    assert lengths.tolist() == [200, 200, 200]


def test_normalized_score_uses_reference_returns():
    out = evaluate(swing_up, "Pendulum-v1", episodes=2, ref_scores=(-1000.0, 0.0))
    assert out["normalized_score"] == pytest.approx(100 * (out["return_mean"] + 1000) / 1000)
    assert evaluate(swing_up, "Pendulum-v1", episodes=1)["normalized_score"] is None


def test_hopper_scores_on_d4rl_scale():
    out = evaluate(lambda o: np.zeros((len(o), 3)), "Hopper-v5", episodes=2)
    expected = 100 * (out["return_mean"] + 20.272305) / (3234.3 + 20.272305)
    assert out["normalized_score"] == pytest.approx(expected)
