"""Slippery FrozenLake, the stochastic gridworld of Dichotomy of Control, as built-in datasets.

DoC's second task (Yang et al., ICLR 2023, the FrozenLake experiment) is gym's ``FrozenLake``:
the 4 x 4 lake ``SFFF / FHFH / FFFH / HFFG``, reward 1 on reaching the goal ``G``, an episode
ends in a hole ``H`` or at the goal, 100 steps at most. On the slippery lake a move goes the
intended way with probability ``success_rate`` (gymnasium's default 1/3) and to each
perpendicular side with half the rest, so whether an episode succeeds is largely luck: a policy
that imitates the actions of *successful* episodes (Decision Transformer asked for return 1)
copies lucky moves. Checked against ``google-research/google-research``,
``dichotomy_of_control/``:

* ``envs/frozenlake_wrapper.py``: one-hot observations (16 numbers) and one-hot actions whose
  ``argmax`` is the move; here the same, as :func:`make_frozenlake_env` (registered ids below);
* ``create_dataset.sh``: ``FrozenLake-v1``, 100 trajectories of at most 100 steps, ``alpha = -1``,
  which ``dice_rl``'s ``env_policies.get_env_and_policy`` turns into a trained DQN's greedy policy
  mixed with uniform actions at ``epsilon = 0.2 * (1 - alpha) = 0.4``. That checkpoint is a
  TensorFlow file; here the greedy policy is the optimal policy of the discounted lake
  (``gamma = 0.99``, what a DQN learns), computed exactly by value iteration on the environment's
  own transition table (``FrozenLakeEnv.P``), and mixed with uniform actions at the same
  ``epsilon = 0.4``.
* The number of logged episodes defaults to 1,000 (the code's test data has 100), so that the
  data's own noise does not swamp the comparison; ``--size`` sets it.

Because the dynamics are a table, every reference number is exact, not sampled: the card holds
the success probability within 100 steps of the optimal (time-dependent) policy
(``ref_max_score``), of uniformly random moves (``ref_min_score``), of the greedy policy and of the
behavior policy.

Built-in names (``policyfit data make frozenlake --out lake.hdf5``; they appear in
``policyfit data list``):

=============================  ==================  ======================================
name                           ``success_rate``    evaluation environment
=============================  ==================  ======================================
``frozenlake``                 1/3 (gymnasium's)   ``policyfit/FrozenLake-v0``
``frozenlake-deterministic``   1                   ``policyfit/FrozenLakeDeterministic-v0``
=============================  ==================  ======================================

Other slip levels (``benchmarks/stochastic.py --task frozenlake`` sweeps them) are
:class:`FrozenLakeTask` objects with :func:`frozenlake_dataset` and :func:`evaluate_frozenlake`.

Example:
    >>> ds = frozenlake_dataset(FROZENLAKE, episodes=200, seed=0)
    >>> ds.observation_dim, ds.action_dim, ds.env_id
    (16, 4, 'policyfit/FrozenLake-v0')
    >>> round(FROZENLAKE.optimal_success(), 3), round(FROZENLAKE.random_success(), 3)
    (0.744, 0.014)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.data.dataset import Dataset
from policyfit.data.spaces import box_space
from policyfit.envs.stochastic import DEFAULT_EPISODES, dataset_row, make_named_dataset

N_STATES = 16
N_ACTIONS = 4  # gymnasium's order: left, down, right, up
MAX_STEPS = 100  # FrozenLake-v1's time limit on the 4 x 4 map
BEHAVIOR_EPSILON = 0.4  # dice_rl: epsilon = 0.2 * (1 - alpha) with alpha = -1


@functools.cache
def transition_table(success_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(T, R, terminal)`` of the 4 x 4 lake from gymnasium's ``FrozenLakeEnv.P``:
    ``T[s, a, s']`` the transition probabilities, ``R[s, a, s']`` the reward, ``terminal[s]`` the
    holes and the goal (absorbing, worth 0 once reached)."""
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

    env = FrozenLakeEnv(map_name="4x4", is_slippery=success_rate < 1, success_rate=success_rate)
    T = np.zeros((N_STATES, N_ACTIONS, N_STATES))
    R = np.zeros((N_STATES, N_ACTIONS, N_STATES))
    terminal = np.isin(env.desc.reshape(-1), [b"H", b"G"])
    for s in range(N_STATES):
        for a in range(N_ACTIONS):
            for prob, nxt, reward, _ in env.P[s][a]:
                T[s, a, nxt] += prob
                R[s, a, nxt] = reward
    for array in (T, R, terminal):
        array.setflags(write=False)
    return T, R, terminal


def finite_horizon_q(
    success_rate: float, policy: np.ndarray | None = None, horizon=MAX_STEPS, discount=1.0
):
    """``Q[h, s, a]``: the expected (discounted) return with ``h + 1`` steps left after taking
    ``a`` in ``s``, then following ``policy[s, a]`` (stationary) or, when ``policy`` is None,
    acting optimally."""
    T, R, terminal = transition_table(success_rate)
    expected_reward = (T * R).sum(-1)
    v = np.zeros(N_STATES)
    qs = []
    for _ in range(horizon):
        q = expected_reward + discount * (T @ v)
        q[terminal] = 0.0
        qs.append(q)
        v = q.max(1) if policy is None else (policy * q).sum(1)
    return np.stack(qs)


@dataclass(frozen=True)
class FrozenLakeTask:
    """The 4 x 4 lake where a move goes the intended way with probability ``success_rate``, logged
    by the discounted lake's optimal policy mixed with uniform moves at ``epsilon``."""

    name: str
    success_rate: float = 1 / 3
    epsilon: float = BEHAVIOR_EPSILON

    @property
    def env_id(self) -> str:
        """The registered evaluation environment: ``frozenlake-deterministic`` ->
        ``policyfit/FrozenLakeDeterministic-v0``."""
        rest = "".join(w.title() for w in self.name.split("-")[1:])
        return f"policyfit/FrozenLake{rest}-v0"

    def optimal_policy(self) -> np.ndarray:
        """The greedy policy of the optimal values with discount 0.99 (so that, of the moves that
        reach the goal as surely, the faster one wins), one-hot ``[16, 4]``."""
        q = finite_horizon_q(self.success_rate, horizon=1000, discount=0.99)[-1]
        return np.eye(N_ACTIONS)[q.argmax(1)]

    def behavior_policy(self) -> np.ndarray:
        """``(1 - epsilon) * optimal + epsilon * uniform``, ``[16, 4]``."""
        return (1 - self.epsilon) * self.optimal_policy() + self.epsilon / N_ACTIONS

    def success(self, policy: np.ndarray | None) -> float:
        """The exact probability that ``policy`` (stationary ``[16, 4]``; None: the optimal
        time-dependent policy) reaches the goal from the start within 100 steps."""
        q = finite_horizon_q(self.success_rate, policy)[-1][0]
        return float(q.max() if policy is None else policy[0] @ q)

    def optimal_success(self) -> float:
        return self.success(None)

    def random_success(self) -> float:
        return self.success(np.full((N_STATES, N_ACTIONS), 1 / N_ACTIONS))

    def behavior_success(self) -> float:
        return self.success(self.behavior_policy())


#: gymnasium's slippery lake (a move goes the intended way one time in three).
FROZENLAKE = FrozenLakeTask("frozenlake", success_rate=1 / 3)
#: The same lake without slipping: success is no longer luck.
FROZENLAKE_DETERMINISTIC = FrozenLakeTask("frozenlake-deterministic", success_rate=1.0)
#: The built-in FrozenLake datasets by name.
LAKES: dict[str, FrozenLakeTask] = {t.name: t for t in (FROZENLAKE, FROZENLAKE_DETERMINISTIC)}


def is_frozenlake_name(name: str) -> bool:
    """``frozenlake`` or ``frozenlake-deterministic``."""
    return name.strip().lower() in LAKES


def frozenlake_dataset(task: FrozenLakeTask, episodes: int = DEFAULT_EPISODES, seed: int = 0):
    """``episodes`` episodes of ``task``'s behavior policy, stored in order (one-hot states and
    moves; ``terminals`` at a hole or the goal, ``timeouts`` at step 100)."""
    T, R, terminal = transition_table(task.success_rate)
    behavior = task.behavior_policy()
    rng = np.random.default_rng(seed)
    states, actions, rewards, nexts, terms, timeouts = [], [], [], [], [], []
    for _ in range(episodes):
        s = 0
        for t in range(MAX_STEPS):
            a = rng.choice(N_ACTIONS, p=behavior[s])
            nxt = rng.choice(N_STATES, p=T[s, a])
            states.append(s)
            actions.append(a)
            rewards.append(R[s, a, nxt])
            nexts.append(nxt)
            terms.append(terminal[nxt])
            timeouts.append(not terminal[nxt] and t == MAX_STEPS - 1)
            s = nxt
            if terminal[nxt]:
                break
    eye_s = np.eye(N_STATES, dtype=np.float32)
    successes = int(np.sum(rewards))
    return Dataset(
        observations=eye_s[states],
        actions=np.eye(N_ACTIONS, dtype=np.float32)[actions],
        rewards=np.asarray(rewards, np.float32),
        terminals=np.asarray(terms, np.float32),
        next_observations=eye_s[nexts],
        timeouts=np.asarray(timeouts, np.float32),
        metadata={
            "dataset_id": f"{task.name}-n{episodes}-s{seed}",
            "env_id": task.env_id,
            "ref_min_score": task.random_success(),  # uniformly random moves, exact
            "ref_max_score": task.optimal_success(),  # the optimal policy, exact
            "card": {
                "behavior": f"optimal policy mixed with uniform moves, epsilon {task.epsilon}",
                "success_rate": task.success_rate,
                "behavior_success_exact": round(task.behavior_success(), 4),
                "greedy_success_exact": round(task.success(task.optimal_policy()), 4),
                "data_success": round(successes / episodes, 4),
                "episodes": episodes,
                "seed": seed,
            },
            "action_space": box_space(np.zeros(N_ACTIONS), np.ones(N_ACTIONS)),
            "observation_space": box_space(np.zeros(N_STATES), np.ones(N_STATES)),
            "frozenlake_success_rate": task.success_rate,
        },
        source=task.name,
    )


def make_frozenlake_dataset(name: str, size=None, seed: int = 0, out=None) -> Dataset:
    """The built-in FrozenLake dataset ``name`` with ``size`` episodes (default 1,000), written to
    ``out`` when given (built in about a second, so never cached)."""
    return make_named_dataset(LAKES, frozenlake_dataset, name, size, seed, out, "FrozenLake")


def list_datasets() -> list[dict]:
    """Rows for ``policyfit data list``."""
    return [
        dataset_row(
            name,
            task.env_id,
            f"optimal, epsilon {task.epsilon}; move success {task.success_rate:.2f}",
        )
        for name, task in LAKES.items()
    ]


def make_frozenlake_env(name: str) -> Any:
    """The lake ``name`` as a gymnasium environment (the entry point of its registered id, with
    gymnasium's 100-step limit): observation the one-hot state, action a score per move in
    ``[0, 1]^4`` (the ``argmax`` move is made), ``info["move"]``.

    Example:
        >>> env = make_frozenlake_env("frozenlake-deterministic")
        >>> obs, _ = env.reset(seed=0)
        >>> _, reward, terminated, _, info = env.step(np.eye(4)[1])  # down
        >>> int(obs.argmax()), info["move"], reward, terminated
        (0, 1, 0.0, False)
    """
    return _lake_env_class()(LAKES[name])


@functools.cache
def _lake_env_class() -> type:
    import gymnasium as gym
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv

    class OneHotFrozenLake(gym.Env):
        def __init__(self, task: FrozenLakeTask):
            self.task = task
            self.lake = FrozenLakeEnv(
                map_name="4x4", is_slippery=task.success_rate < 1, success_rate=task.success_rate
            )
            self.observation_space = gym.spaces.Box(0.0, 1.0, (N_STATES,), np.float32)
            self.action_space = gym.spaces.Box(0.0, 1.0, (N_ACTIONS,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            state, info = self.lake.reset(seed=seed)
            return np.eye(N_STATES, dtype=np.float32)[state], info

        def step(self, action):
            move = int(np.argmax(np.asarray(action)))
            state, reward, terminated, truncated, info = self.lake.step(move)
            obs = np.eye(N_STATES, dtype=np.float32)[state]
            return obs, float(reward), terminated, truncated, {**info, "move": move}

    return OneHotFrozenLake


@functools.cache
def register_frozenlake_envs() -> None:
    """Register ``policyfit/FrozenLake-v0`` and ``policyfit/FrozenLakeDeterministic-v0``."""
    import gymnasium as gym

    for name, task in LAKES.items():
        if task.env_id not in gym.registry:
            gym.register(
                id=task.env_id,
                entry_point="policyfit.envs.frozenlake:make_frozenlake_env",
                kwargs={"name": name},
                max_episode_steps=MAX_STEPS,
            )


def evaluate_frozenlake(policy: Any, task: FrozenLakeTask, episodes: int = 1000, seed: int = 0):
    """Run ``episodes`` episodes of a carry policy (``initial_carry``/``act``/``observe_reward``,
    as :class:`policyfit.Policy`) in parallel on the exact transition table.

    Returns ``{"success", "first_value", "first_moves", "steps"}``: the share of episodes that
    reached the goal, the carry's ``value`` after the first step (what a DoC policy predicts for
    the latent it chose; None for policies without one), the share of each first move, and the
    mean episode length.
    """
    T, R, terminal = transition_table(task.success_rate)
    rng = np.random.default_rng(seed)
    eye = np.eye(N_STATES, dtype=np.float32)
    state = np.zeros(episodes, int)
    alive = np.ones(episodes, bool)
    paid = np.zeros(episodes)
    steps = np.zeros(episodes)
    carry = policy.initial_carry(episodes)
    first_value = first_moves = None
    for t in range(MAX_STEPS):
        actions, carry = policy.act(eye[state], carry)
        move = np.argmax(np.asarray(actions), axis=-1)
        if t == 0:
            first_moves = np.bincount(move, minlength=N_ACTIONS) / episodes
            if isinstance(carry, dict) and "value" in carry:
                first_value = float(np.mean(np.asarray(carry["value"])))
        cumulative = T[state, move].cumsum(-1)
        nxt = np.minimum((rng.random((episodes, 1)) > cumulative).sum(-1), N_STATES - 1)
        reward = R[state, move, nxt] * alive
        carry = policy.observe_reward(carry, reward.astype(np.float32))
        paid += reward
        steps += alive
        state = np.where(alive, nxt, state)
        alive &= ~terminal[nxt]
        if not alive.any():
            break
    return {
        "success": float(paid.mean()),
        "first_value": first_value,
        "first_moves": first_moves,
        "steps": float(steps.mean()),
    }
