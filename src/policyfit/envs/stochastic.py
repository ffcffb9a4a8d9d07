"""Small stochastic tasks where return conditioning over-promises: the Bernoulli bandit of
Dichotomy of Control, as a dataset builder and a vectorized evaluation environment.

The DoC code (``google-research/google-research``, ``dichotomy_of_control/``) runs its tabular
methods on ``bernoulli_bandit`` from ``google-research/dice_rl``:
``environments/bernoulli_bandit.py`` (one state, two arms, reward ``1`` with the arm's probability,
episodes of one step), data from ``create_dataset.sh`` (``--num_trajectory=1000
--max_trajectory_length=1 --alpha=0.1``), behavior ``get_bandit_policy(bernoulli_prob=alpha)``
= ``[1 - alpha, alpha]`` and evaluation in ``scripts/run_tabular.py`` on
``BernoulliBandit(bernoulli_prob=alpha)``: arm probabilities ``[alpha, 1 - alpha]``. So with
``alpha = 0.1`` the data pulls the bad arm (``p = 0.1``) 90% of the time and the good arm
(``p = 0.9``) 10% of the time: among successful episodes each arm is equally frequent
(``0.9 * 0.1 = 0.1 * 0.9``), and a policy conditioned on success is a coin flip (expected
reward 0.5) where the best arm pays 0.9. (One inconsistency in that code: ``env_policies.py``
builds the *data* environment as ``BernoulliBandit(num_arms=2)`` without ``bernoulli_prob``, whose
arm probabilities are then drawn at random from ``generation_seed = 0``; the evaluation
environment is the ``[0.1, 0.9]`` one. Here data and evaluation use the same probabilities.)

:data:`DOC_BANDIT` is that task; :data:`LUCKY_BANDIT` tilts it so that the arm with more
*successes* in the data is the worse arm (a DT conditioned on success picks it).

Actions are stored as one-hot vectors in the box ``[0, 1]^arms`` so that the continuous
sequence models (DT, DoC) learn them by regression, as the DoC code does (one-hot actions, MSE);
the environment pulls the ``argmax`` arm.

Both are built-in datasets (``policyfit data make doc-bandit``, ``lucky-bandit``; 1,000 episodes
by default) whose ``env_id`` (``policyfit/DocBandit-v0``, ``policyfit/LuckyBandit-v0``) is a
registered gymnasium environment, so ``policyfit train dt --dataset doc-bandit`` evaluates by the
usual rollouts. Their reference scores: a uniformly random arm (0) and the best arm (100).

Example:
    >>> ds = bernoulli_bandit_dataset(DOC_BANDIT, episodes=1000, seed=0)
    >>> len(ds), ds.action_dim, float(ds.terminals.mean())
    (1000, 2, 1.0)
    >>> round(float(ds.actions[:, 1].mean()), 2)  # the behavior pulls the good arm 10% of the time
    0.1
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.data.dataset import Dataset
from policyfit.data.spaces import box_space
from policyfit.errors import PolicyfitError


@dataclass(frozen=True)
class BernoulliBandit:
    """One state, ``len(probs)`` arms; arm ``i`` pays ``1`` with probability ``probs[i]``."""

    name: str
    probs: tuple[float, ...]  # success probability of each arm
    behavior: tuple[float, ...]  # the logging policy's probability of each arm

    @property
    def arms(self) -> int:
        return len(self.probs)

    @property
    def env_id(self) -> str:
        """The registered evaluation environment (``policyfit/DocBandit-v0``)."""
        return "policyfit/" + "".join(w.title() for w in self.name.split("-")) + "-v0"

    @property
    def best_arm(self) -> int:
        return int(np.argmax(self.probs))

    def success_posterior(self) -> np.ndarray:
        """``P(arm | reward = 1)`` under the behavior policy: what a DT asked for 1 imitates."""
        joint = np.asarray(self.behavior) * np.asarray(self.probs)
        return joint / joint.sum()


#: The DoC code's bandit (``alpha = 0.1``): arms [0.1, 0.9], behavior [0.9, 0.1].
DOC_BANDIT = BernoulliBandit("doc-bandit", probs=(0.1, 0.9), behavior=(0.9, 0.1))
#: Success is more often the bad arm's: P(arm | r = 1) = [0.69, 0.31]; arms [0.2, 0.8].
LUCKY_BANDIT = BernoulliBandit("lucky-bandit", probs=(0.2, 0.8), behavior=(0.9, 0.1))


#: The built-in bandit datasets by name.
BANDITS: dict[str, BernoulliBandit] = {b.name: b for b in (DOC_BANDIT, LUCKY_BANDIT)}
DEFAULT_EPISODES = 1000


def is_bandit_name(name: str) -> bool:
    """``doc-bandit`` or ``lucky-bandit``."""
    return name.strip().lower() in BANDITS


def bernoulli_bandit_dataset(bandit: BernoulliBandit, episodes: int = 1000, seed: int = 0):
    """``episodes`` one-step episodes logged by ``bandit.behavior`` (observation: a constant 1)."""
    rng = np.random.default_rng(seed)
    arms = rng.choice(bandit.arms, size=episodes, p=np.asarray(bandit.behavior))
    rewards = (rng.random(episodes) < np.asarray(bandit.probs)[arms]).astype(np.float32)
    obs = np.ones((episodes, 1), np.float32)
    return Dataset(
        observations=obs,
        actions=np.eye(bandit.arms, dtype=np.float32)[arms],
        rewards=rewards,
        terminals=np.ones(episodes, np.float32),
        next_observations=obs.copy(),
        metadata={
            "dataset_id": f"{bandit.name}-n{episodes}-s{seed}",
            "env_id": bandit.env_id,
            "ref_min_score": float(np.mean(bandit.probs)),  # a uniformly random arm
            "ref_max_score": float(np.max(bandit.probs)),  # the best arm
            "card": {
                "behavior": f"arm probabilities {list(bandit.behavior)}",
                "arm_success_probabilities": list(bandit.probs),
                "episodes": episodes,
                "seed": seed,
            },
            "action_space": box_space(np.zeros(bandit.arms), np.ones(bandit.arms)),
            "observation_space": box_space(np.ones(1), np.ones(1)),
            "bandit_probs": list(bandit.probs),
            "behavior_probs": list(bandit.behavior),
        },
        source=bandit.name,
    )


def make_bandit_dataset(name: str, size: int | None = None, seed: int = 0, out=None) -> Dataset:
    """The built-in bandit dataset ``name`` with ``size`` episodes (default 1,000), written to
    ``out`` when given (built in milliseconds, so never cached)."""
    return make_named_dataset(BANDITS, bernoulli_bandit_dataset, name, size, seed, out, "bandit")


def make_named_dataset(tasks: dict, build, name: str, size, seed: int, out, kind: str) -> Dataset:
    """``build(tasks[name], episodes=size, seed=seed)`` (``size`` default 1,000), written to
    ``out`` when given: the built-in small stochastic tasks (bandits, FrozenLake)."""
    key = name.strip().lower()
    if key not in tasks:
        raise PolicyfitError(f"unknown dataset; {kind} names: {', '.join(tasks)}", path=name)
    size = DEFAULT_EPISODES if size is None else int(size)
    if size < 1:
        raise PolicyfitError("must be >= 1", path=name, field="size")
    ds = build(tasks[key], episodes=size, seed=seed)
    if out is not None:
        from policyfit.data.io import save_dataset

        save_dataset(ds, out)
    return ds


def list_datasets() -> list[dict]:
    """Rows for ``policyfit data list``."""
    return [
        dataset_row(
            name, bandit.env_id, f"arms {list(bandit.behavior)}; success {list(bandit.probs)}"
        )
        for name, bandit in BANDITS.items()
    ]


def dataset_row(name: str, env_id: str, behavior: str) -> dict:
    """One ``policyfit data list`` row of a small task built on demand (never cached)."""
    return {
        "name": name,
        "env_id": env_id,
        "behavior": behavior,
        "available": True,
        "cached": False,
        "size": DEFAULT_EPISODES,
        "behavior_normalized_score": None,
        "path": None,
    }


def make_bandit_env(name: str) -> Any:
    """The bandit ``name`` as a gymnasium environment (the entry point of its registered id):
    one step per episode, observation ``[1.0]``, action a score per arm in ``[0, 1]^arms`` (the
    ``argmax`` arm is pulled), reward 1 with that arm's probability, ``info["arm"]``.

    Example:
        >>> env = make_bandit_env("doc-bandit")
        >>> obs, _ = env.reset(seed=0)
        >>> _, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0]))
        >>> info["arm"], terminated, truncated
        (1, True, False)
    """
    return _bandit_env_class()(BANDITS[name])


@functools.cache
def _bandit_env_class() -> type:
    import gymnasium as gym

    class BernoulliBanditEnv(gym.Env):
        def __init__(self, bandit: BernoulliBandit):
            self.bandit = bandit
            self.observation_space = gym.spaces.Box(1.0, 1.0, (1,), np.float32)
            self.action_space = gym.spaces.Box(0.0, 1.0, (bandit.arms,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.ones(1, np.float32), {}

        def step(self, action):
            arm = int(np.argmax(np.asarray(action)))
            reward = float(self.np_random.random() < self.bandit.probs[arm])
            return np.ones(1, np.float32), reward, True, False, {"arm": arm}

    return BernoulliBanditEnv


@functools.cache
def register_bandit_envs() -> None:
    """Register ``policyfit/DocBandit-v0`` and ``policyfit/LuckyBandit-v0`` with gymnasium."""
    import gymnasium as gym

    for name, bandit in BANDITS.items():
        if bandit.env_id not in gym.registry:
            gym.register(
                id=bandit.env_id,
                entry_point="policyfit.envs.stochastic:make_bandit_env",
                kwargs={"name": name},
            )


def evaluate_bandit(policy: Any, bandit: BernoulliBandit, episodes: int = 1000, seed: int = 0):
    """Run ``episodes`` one-step episodes of a carry policy (``initial_carry``/``act``/
    ``observe_reward``, as :class:`policyfit.Policy`) in parallel.

    Returns ``{"return_mean", "expected_return", "arm_frequency", "carry"}``: the mean paid
    reward, the mean success probability of the pulled arms (the same without sampling noise),
    how often each arm was pulled, and the carry after the rewards were fed back.
    """
    rng = np.random.default_rng(seed)
    carry = policy.initial_carry(episodes)
    actions, carry = policy.act(np.ones((episodes, 1), np.float32), carry)
    arm = np.argmax(np.asarray(actions), axis=-1)
    p = np.asarray(bandit.probs)[arm]
    reward = (rng.random(episodes) < p).astype(np.float32)
    carry = policy.observe_reward(carry, reward)
    return {
        "return_mean": float(reward.mean()),
        "expected_return": float(p.mean()),
        "arm_frequency": np.bincount(arm, minlength=bandit.arms) / episodes,
        "carry": carry,
    }
