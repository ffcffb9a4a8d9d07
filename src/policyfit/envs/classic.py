"""``cartpole-medium``: small discrete-action data on gymnasium's ``CartPole-v1`` from a fixed
controller, built in seconds without shipped weights (tests, quick demos).

The behavior policy is a fixed linear controller of the pole, ``a = 1[theta + 0.5 theta_dot +
0.05 x + 0.1 x_dot > 0]``, which balances for the full 500 steps, mixed with uniformly random
actions with probability 0.5 (about 200 of 500 on average). Nothing is downloaded or trained: the
data is a pure function of size and seed. The discrete suite of the dataset-quality paper
(``cartpole-{random,mixed,replay,noisy,expert}``, ...) is :mod:`policyfit.envs.discrete_suite`.

The normalized score uses ``ref_min_score`` = the mean return of the uniformly random policy over
100 episodes of seeds ``10_000 + i`` (measured, :func:`random_policy_return`), and
``ref_max_score`` = 500, the most CartPole-v1 pays. Both travel in the dataset's metadata.

Example:
    >>> ds = make_cartpole_dataset("cartpole-medium", size=2_000, seed=0)
    >>> ds.discrete, ds.action_dim, ds.env_id
    (True, 2, 'CartPole-v1')
"""

from __future__ import annotations

from functools import cache

import numpy as np

from policyfit.data.dataset import Dataset
from policyfit.data.spaces import discrete_space, space_from_gym
from policyfit.errors import PolicyfitError

ENV_ID = "CartPole-v1"
MAX_RETURN = 500.0  # CartPole-v1 pays 1 per step for at most 500 steps
EPSILONS = {"cartpole-medium": 0.5}
DEFAULT_SIZE = 50_000
CONTROLLER = np.array([0.05, 0.1, 1.0, 0.5])  # weights on (x, x_dot, theta, theta_dot)


def is_classic_name(name: str) -> bool:
    return name.strip().lower() in EPSILONS


def controller_action(obs: np.ndarray) -> int:
    """The balancing controller: push right when the weighted state leans right."""
    return int(obs @ CONTROLLER > 0)


def _episodes(epsilon: float, size: int, seed: int, first_episode_seed: int) -> dict:
    import gymnasium as gym

    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next")}
    episode = 0
    while len(cols["rew"]) < size:
        obs, _ = env.reset(seed=first_episode_seed + episode)
        done = False
        while not done and len(cols["rew"]) < size:
            explore = rng.random() < epsilon
            action = int(rng.integers(2)) if explore else controller_action(obs)
            nxt, reward, term, trunc, _ = env.step(action)
            # the dataset's last step ends its episode (a timeout) even mid-episode
            trunc = trunc or len(cols["rew"]) == size - 1
            for key, value in zip(cols, (obs, action, reward, term, trunc, nxt), strict=True):
                cols[key].append(value)
            obs, done = nxt, term or trunc
        episode += 1
    env.close()
    return cols


@cache
def random_policy_return(episodes: int = 100) -> float:
    """Mean return of the uniformly random policy (``ref_min_score``), measured."""
    import gymnasium as gym

    env = gym.make(ENV_ID)
    rng = np.random.default_rng(10_000)
    total = 0.0
    for i in range(episodes):
        env.reset(seed=10_000 + i)
        done = False
        while not done:
            _, reward, term, trunc, _ = env.step(int(rng.integers(2)))
            total += reward
            done = term or trunc
    env.close()
    return total / episodes


def make_cartpole_dataset(name: str = "cartpole-medium", size: int | None = None, seed: int = 0):
    """Collect ``size`` transitions (default 50,000) of ``name``'s behavior policy on CartPole-v1."""
    import gymnasium as gym

    key = name.strip().lower()
    if key not in EPSILONS:
        raise PolicyfitError(
            f"unknown dataset; classic-control names: {', '.join(EPSILONS)}", path=name
        )
    size = DEFAULT_SIZE if size is None else int(size)
    if size < 1:
        raise PolicyfitError("must be >= 1", path=name, field="size")
    cols = _episodes(EPSILONS[key], size, seed, first_episode_seed=seed * 1_000_003)
    env = gym.make(ENV_ID)
    metadata = {
        "env_id": ENV_ID,
        "dataset_id": key,
        "observation_space": space_from_gym(env.observation_space),
        "action_space": discrete_space(2),
        "ref_min_score": random_policy_return(),
        "ref_max_score": MAX_RETURN,
        "card": {
            "behavior": f"linear pole controller, random action with probability {EPSILONS[key]}",
            "size": size,
            "seed": seed,
        },
    }
    env.close()
    return Dataset(
        observations=np.asarray(cols["obs"], np.float32),
        actions=np.asarray(cols["act"], np.int64),
        rewards=np.asarray(cols["rew"], np.float32),
        terminals=np.asarray(cols["term"], bool),
        timeouts=np.asarray(cols["trunc"], bool),
        next_observations=np.asarray(cols["next"], np.float32),
        metadata=metadata,
        source=key,
    )


def list_datasets() -> list[dict]:
    """Rows for ``policyfit data list``: always available, never cached (built in seconds)."""
    return [
        {
            "name": name,
            "env_id": ENV_ID,
            "behavior": f"controller, epsilon {eps}",
            "available": True,
            "cached": False,
            "size": DEFAULT_SIZE,
            "behavior_normalized_score": None,
            "path": None,
        }
        for name, eps in EPSILONS.items()
    ]
