import numpy as np
import pytest

from policyfit.data import Dataset


def linear_system_dataset(
    episodes: int = 40, length: int = 100, seed: int = 0, policy_noise: float = 0.3
) -> Dataset:
    """Smooth trajectories of s' = A s + B a with a = -K s + noise; reward = -|s|^2 - 0.1 |a|^2."""
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = 4, 2
    theta = 0.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    a_mat = np.kron(np.eye(2), rot) * 0.99
    b_mat = rng.normal(size=(obs_dim, act_dim)) * 0.1
    k_mat = rng.normal(size=(act_dim, obs_dim)) * 0.3
    n = episodes * length
    obs = np.empty((n, obs_dim))
    act = np.empty((n, act_dim))
    nxt = np.empty((n, obs_dim))
    i = 0
    for _ in range(episodes):
        s = rng.normal(size=obs_dim) * 2
        for _ in range(length):
            a = np.clip(-k_mat @ s + policy_noise * rng.normal(size=act_dim), -1, 1)
            s2 = a_mat @ s + b_mat @ a
            obs[i], act[i], nxt[i] = s, a, s2
            s, i = s2, i + 1
    rewards = -np.sum(obs**2, axis=1) - 0.1 * np.sum(act**2, axis=1)
    timeouts = np.zeros(n, bool)
    timeouts[length - 1 :: length] = True
    return Dataset(
        observations=obs,
        actions=act,
        rewards=rewards,
        terminals=np.zeros(n),
        timeouts=timeouts,
        next_observations=nxt,
        metadata={
            "env_id": "LinearSystem-v0",
            "action_space": {"type": "box", "low": [-1.0] * act_dim, "high": [1.0] * act_dim},
            "ref_min_score": -2000.0,
            "ref_max_score": 0.0,
        },
        source="linear-system",
    )


@pytest.fixture(scope="session")
def linear_ds() -> Dataset:
    return linear_system_dataset()


@pytest.fixture(scope="session")
def make_linear_ds():
    """The dataset factory, for tests that need other sizes or noise levels."""
    return linear_system_dataset
