"""DoC's slippery FrozenLake: exact references against the real gymnasium lake, the dataset, the
registered environments and the vectorized evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.data.io import load_dataset as load_file
from policyfit.envs.datasets import list_datasets, load_dataset
from policyfit.envs.frozenlake import (
    FROZENLAKE,
    FROZENLAKE_DETERMINISTIC,
    FrozenLakeTask,
    evaluate_frozenlake,
    frozenlake_dataset,
    transition_table,
)
from policyfit.envs.registry import make_env
from policyfit.errors import PolicyfitError


class TablePolicy:
    """A stationary policy ``[16, 4]`` with the carry interface of :class:`policyfit.Policy`."""

    def __init__(self, table, seed=99):  # not the evaluator's seed: the draws must differ
        self.table = table
        self.rng = np.random.default_rng(seed)

    def initial_carry(self, n):
        return {}

    def act(self, obs, carry):
        probs = self.table[np.asarray(obs).argmax(-1)]
        moves = (self.rng.random((len(probs), 1)) > probs.cumsum(-1)).sum(-1)
        return np.eye(4)[np.minimum(moves, 3)], carry

    def observe_reward(self, carry, reward):
        return carry


def test_transition_table_is_gymnasiums_lake():
    T, R, terminal = transition_table(1 / 3)
    assert np.allclose(T.sum(-1), 1.0)
    assert terminal.nonzero()[0].tolist() == [5, 7, 11, 12, 15]  # four holes and the goal
    assert set(np.unique(R)) == {0.0, 1.0} and R[..., 15].max() == 1.0 and R[..., :15].max() == 0
    # from the start, "down" goes down a third of the time, else left (stays) or right
    assert T[0, 1, [0, 4, 1]] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    T_det = transition_table(1.0)[0]
    assert T_det[0, 1, 4] == 1.0


@pytest.mark.parametrize("task", [FROZENLAKE, FrozenLakeTask("frozenlake-mild", 2 / 3)])
def test_exact_success_matches_the_real_environment(task):
    """The greedy policy's exact 100-step success against 1,500 episodes of gymnasium's lake."""
    from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv
    from gymnasium.wrappers import TimeLimit

    env = TimeLimit(FrozenLakeEnv(success_rate=task.success_rate), max_episode_steps=100)
    greedy = task.optimal_policy().argmax(1)
    wins = 0
    episodes = 1500
    for i in range(episodes):
        s, _ = env.reset(seed=i)
        done = False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(greedy[s]))
            done = terminated or truncated
        wins += r
    exact = task.success(task.optimal_policy())
    assert wins / episodes == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / episodes))
    assert task.random_success() < task.behavior_success() < exact <= task.optimal_success() + 1e-12


def test_dataset_episodes_end_where_the_lake_says():
    ds = frozenlake_dataset(FROZENLAKE, episodes=400, seed=1)
    states = ds.observations.argmax(1)
    nexts = ds.next_observations.argmax(1)
    assert np.allclose(ds.observations.sum(1), 1) and np.allclose(ds.actions.sum(1), 1)
    ends = np.flatnonzero(ds.terminals + ds.timeouts)
    assert len(ends) == 400 and ends[-1] == len(ds) - 1
    assert set(nexts[ds.terminals == 1]) <= {5, 7, 11, 12, 15}
    assert np.array_equal(ds.rewards == 1, nexts == 15)
    # each episode starts at the start and continues where the last step left off
    starts = np.r_[0, ends[:-1] + 1]
    assert (states[starts] == 0).all()
    inner = np.setdiff1d(np.arange(len(ds) - 1), ends)
    assert np.array_equal(states[inner + 1], nexts[inner])
    card = ds.metadata["card"]
    assert card["data_success"] == pytest.approx(card["behavior_success_exact"], abs=0.05)
    assert ds.metadata["ref_max_score"] == pytest.approx(FROZENLAKE.optimal_success())


def test_built_in_names_and_registered_environments(tmp_path):
    ds = load_dataset("frozenlake-deterministic", size=50, seed=2)
    assert ds.env_id == "policyfit/FrozenLakeDeterministic-v0" and ds.timeouts is not None
    assert {"frozenlake", "frozenlake-deterministic"} <= {r["name"] for r in list_datasets()}
    env = make_env("policyfit/FrozenLakeDeterministic-v0", seed=0)
    greedy = FROZENLAKE_DETERMINISTIC.optimal_policy()
    obs, _ = env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(greedy[obs.argmax()])
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert (total, steps) == (1.0, 6)  # the shortest path
    assert make_env("policyfit/FrozenLake-v0").spec.max_episode_steps == 100
    out = tmp_path / "lake.hdf5"
    result = CliRunner().invoke(
        cli, ["data", "make", "frozenlake", "--size", "30", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert load_file(out).metadata["card"]["episodes"] == 30
    with pytest.raises(PolicyfitError, match="size: must be >= 1"):
        load_dataset("frozenlake", size=0)


def test_vectorized_evaluator_agrees_with_the_exact_value():
    task = FrozenLakeTask("frozenlake-mild", 2 / 3)
    out = evaluate_frozenlake(TablePolicy(task.behavior_policy()), task, episodes=4000, seed=0)
    exact = task.behavior_success()
    assert out["success"] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 4000))
    assert out["first_value"] is None and out["first_moves"].sum() == pytest.approx(1.0)
    greedy = evaluate_frozenlake(TablePolicy(task.optimal_policy()), task, episodes=4000, seed=1)
    assert greedy["success"] > 2 * out["success"]
