"""A small dataset with structure (a linear system, quadratic cost) and one tiny clean critic per session."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.corruption.critic import CriticConfig, load_or_fit_critic
from policyfit.data import Dataset

TINY_CRITIC = CriticConfig(n_critics=3, hidden_dims=(32, 32), steps=400, batch_size=128)


def linear_system(n: int = 1200, episode_len: int = 100, seed: int = 0) -> Dataset:
    """s' = 0.9 s + 0.5 B a + noise, r = -|s|² - 0.1|a|², a from a noisy linear controller."""
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = 3, 2
    b = rng.normal(size=(act_dim, obs_dim))
    obs = np.zeros((n, obs_dim))
    nxt = np.zeros((n, obs_dim))
    act = np.zeros((n, act_dim))
    rew = np.zeros(n)
    s = rng.normal(size=obs_dim)
    for t in range(n):
        if t % episode_len == 0:
            s = rng.normal(size=obs_dim)
        a = np.clip(-0.3 * s[:act_dim] + 0.3 * rng.normal(size=act_dim), -1, 1)
        s2 = 0.9 * s + 0.5 * a @ b + 0.05 * rng.normal(size=obs_dim)
        obs[t], act[t], nxt[t] = s, a, s2
        rew[t] = -np.sum(s**2) - 0.1 * np.sum(a**2)
        s = s2
    return Dataset(
        observations=obs,
        actions=act,
        rewards=rew,
        terminals=np.zeros(n, bool),
        timeouts=np.arange(n) % episode_len == episode_len - 1,
        next_observations=nxt,
        metadata={
            "action_space": {"type": "box", "low": [-1.0] * act_dim, "high": [1.0] * act_dim},
            "card": {"behavior": "noisy linear controller"},
        },
        source="linear-system",
    )


@pytest.fixture(scope="session")
def clean() -> Dataset:
    return linear_system()


@pytest.fixture(scope="session")
def critic(clean):
    return load_or_fit_critic(clean, TINY_CRITIC)
