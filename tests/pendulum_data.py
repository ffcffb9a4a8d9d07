"""A small real offline dataset for algorithm tests: Pendulum-v1 under a noisy swing-up controller.

The controller pumps energy (torque along the angular velocity) and balances with a PD law near
the top; Gaussian noise and a share of uniformly random episodes make the data mixed-quality.
A uniformly random policy scores about -1200 per episode; the data's mean is far better, so a
learner that imitates or improves on the data is clearly better than random.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from policyfit.data import Dataset
from policyfit.data.spaces import space_from_gym

RANDOM_RETURN = -1200.0  # uniform random policy on Pendulum-v1, about (-1150 .. -1300)


def swing_up(obs: np.ndarray) -> np.ndarray:
    """Energy pumping (theta'' = 15 sin(theta) + 3u, E = theta'^2 / 2 + 15 cos(theta)) + PD balance."""
    cos, sin, vel = obs[..., 0], obs[..., 1], obs[..., 2]
    theta = np.arctan2(sin, cos)
    energy = 0.5 * vel**2 + 15.0 * cos
    pump = 2.0 * np.sign(vel * (15.0 - energy) + 1e-6)
    balance = -12.0 * theta - 3.0 * vel
    return np.clip(np.where(cos > 0.93, balance, pump), -2.0, 2.0)[..., None]


def pendulum_dataset(
    episodes: int = 20, noise: float = 1.0, random_share: float = 0.25, seed: int = 0
) -> Dataset:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "next_observations",
        )
    }
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + ep)
        random_episode = rng.random() < random_share
        done = False
        while not done:
            if random_episode:
                action = rng.uniform(-2.0, 2.0, size=1)
            else:
                action = np.clip(swing_up(obs) + noise * rng.normal(size=1), -2.0, 2.0)
            nxt, reward, term, trunc, _ = env.step(action.astype(np.float32))
            for k, v in zip(rows, (obs, action, reward, term, trunc, nxt), strict=True):
                rows[k].append(v)
            obs, done = nxt, term or trunc
    return Dataset(
        **{k: np.asarray(v) for k, v in rows.items()},
        metadata={
            "env_id": "Pendulum-v1",
            "action_space": space_from_gym(env.action_space),
            "observation_space": space_from_gym(env.observation_space),
            "dataset_id": "pendulum-mixed",
        },
        source="pendulum-mixed",
    )
