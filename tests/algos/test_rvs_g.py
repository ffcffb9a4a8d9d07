"""RvS-G (Emmons et al. 2022, goal-conditioned): hindsight goals drawn as the official code draws
them, the Gaussian NLL of one update by hand, and a small goal task it must learn.

Official sampler (scottemmons/rvs @ 90c0ffb2, ``src/rvs/dataset.py::D4RLIterableDataset.
_sample_indices``): an episode uniformly, ``t1 = floor(u1 (L - 1))``, ``t2 = floor(u2 L)``, state at
``min(t1, t2)``, goal at ``max(t1, t2)``.
"""

from __future__ import annotations

import shutil

import handnets as hn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import policyfit
from policyfit.algos.base import DatasetSpec
from policyfit.algos.rvs import HindsightGoalSampler, RvSG, RvSGConfig
from policyfit.data import Dataset
from policyfit.errors import ConfigError

FAST = dict(progress=False, fast_compile=True, fuse=50)


def two_episode_dataset() -> Dataset:
    """Episodes of 3 and 5 steps, then one of 1 step. Observations ``(row, episode, desired goal)``;
    the achieved goal of row ``i`` is ``100 + i`` (so a goal names the row it came from)."""
    n = 9
    episode = np.repeat([0, 1, 2], [3, 5, 1])
    obs = np.stack([np.arange(n), episode, np.full(n, -7.0)], axis=1).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[[2, 7, 8]] = True
    return Dataset(
        observations=obs,
        actions=-np.arange(n, dtype=np.float32)[:, None],
        rewards=np.zeros(n, np.float32),
        terminals=np.zeros(n, bool),
        timeouts=timeouts,
        metadata={"extra_arrays": {"achieved_goal": (100.0 + np.arange(n))[:, None]}},
        source="two-episodes",
    )


def test_hindsight_goals_come_from_the_same_episode_at_or_after_the_step():
    ds = two_episode_dataset()
    sampler = HindsightGoalSampler(ds, (2, 3))
    n = 30_000
    batch = jax.jit(sampler.sample, static_argnums=2)(sampler.data, jax.random.PRNGKey(3), n)
    start, goal = np.asarray(batch["start_index"]), np.asarray(batch["goal_index"])
    episode = np.repeat([0, 1, 2], [3, 5, 1])
    assert np.all(episode[start] == episode[goal])  # never another episode
    assert np.all(goal >= start)  # never the past
    obs = np.asarray(batch["observations"])
    np.testing.assert_array_equal(obs[:, 0], start)  # the state is row `start` ...
    np.testing.assert_array_equal(obs[:, 2], 100.0 + goal)  # ... its goal that of row `goal`
    np.testing.assert_array_equal(np.asarray(batch["actions"])[:, 0], -start)

    # episodes equally likely whatever their length (not in proportion to it)
    np.testing.assert_allclose(np.bincount(episode[start]) / n, [1 / 3] * 3, atol=0.012)
    # episode 0 (L = 3): t1 in {0, 1}, t2 in {0, 1, 2}, each uniform; (min, max) pairs:
    # (0,0): t1=t2=0; (0,1): (0,1) or (1,0); (0,2): (0,2); (1,1): (1,1); (1,2): (1,2)
    first = episode[start] == 0
    pairs = {
        (s, g): np.mean((start[first] == s) & (goal[first] == g))
        for s in (0, 1, 2)
        for g in (0, 1, 2)
    }
    want = {(0, 0): 1 / 6, (0, 1): 2 / 6, (0, 2): 1 / 6, (1, 1): 1 / 6, (1, 2): 1 / 6}
    for pair, p in pairs.items():
        assert p == pytest.approx(want.get(pair, 0.0), abs=0.015), pair
    # the last step of an episode longer than 1 is never a start; a 1-step episode is its own goal
    assert not np.isin(start, [2, 7]).any()
    assert np.all(goal[start == 8] == 8)


def test_one_update_is_the_gaussian_nll_of_s_with_its_hindsight_goal():
    spec = DatasetSpec(
        observation_dim=3,
        action_dim=2,
        action_low=(-2.0, -1.0),
        action_high=(2.0, 3.0),
        obs_mean=(0.5, -1.0, 0.0),
        obs_std=(2.0, 0.5, 1.0),
    )
    algo = RvSG(RvSGConfig(hidden_dims=(5, 4), goal_dims=(2, 3)))
    ds = two_episode_dataset()
    algo.prepare(ds)  # the goal slice (2, 3) is normalized with the achieved goals' statistics
    state = algo.init(spec, jax.random.PRNGKey(0))
    goals = 100.0 + np.arange(9)
    np.testing.assert_allclose(state["obs_norm"]["mean"], [0.5, -1.0, goals.mean()], rtol=1e-6)
    np.testing.assert_allclose(
        state["obs_norm"]["std"], [2.001, 0.501, goals.std() + 1e-3], rtol=1e-6
    )
    actor = hn.randomize(state["actor"], 1)
    actor["params"]["log_std"] = jnp.array([-0.4, 0.3])
    state = dict(state, actor=actor)

    rng = np.random.default_rng(2)
    obs = rng.normal(size=(4, 3)).astype(np.float32)
    obs[:, 2] += 104.0
    actions = np.array([[-1.5, 0.0], [0.3, 2.5], [1.9, -0.8], [0.0, 1.0]], np.float32)
    batch = {"observations": obs, "actions": actions}
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(1))

    x = (obs - np.array([0.5, -1.0, goals.mean()])) / np.array([2.001, 0.501, goals.std() + 1e-3])
    mean, log_std = hn.gaussian_actor(actor, x)
    unit = (actions - np.array([0.0, 1.0])) / np.array([2.0, 2.0])
    want = -np.mean(hn.normal_log_prob(unit, mean, log_std))
    assert float(metrics["actor_loss"]) == pytest.approx(want, rel=1e-5)
    assert hn.trees_differ(new_state["actor"], actor)


def test_rvs_g_refuses_data_without_achieved_goals_and_bad_goal_dims(small_dataset, tmp_path):
    with pytest.raises(ConfigError, match="no achieved_goal extra array") as info:
        policyfit.train("rvs_g", small_dataset, steps=1, out=tmp_path / "a", progress=False)
    assert info.value.field == "extra_arrays.achieved_goal"
    assert not (tmp_path / "a").exists()  # refused before a run directory
    ds = two_episode_dataset()
    with pytest.raises(ConfigError, match=r"0 <= START < STOP <= 3 .* got 2,5"):
        policyfit.train("rvs_g", ds, steps=1, config={"goal_dims": "2,5"}, progress=False)
    with pytest.raises(ConfigError, match="achieved_goal array has 1 numbers .* has 2"):
        policyfit.train("rvs_g", ds, steps=1, config={"goal_dims": "1,3"}, progress=False)


def point_to_goal_dataset(episodes: int = 300, steps: int = 8, seed: int = 0) -> Dataset:
    """A 2-D point moved by its action (``p' = p + 0.1 a``); each episode heads one random way.

    Observation ``(x, y, gx, gy)``: the stored desired goal is noise, unrelated to the motion, so
    only the hindsight goals (future positions, the ``achieved_goal``) say where an action leads.
    """
    rng = np.random.default_rng(seed)
    obs, acts, ends, achieved = [], [], [], []
    for _ in range(episodes):
        p = rng.uniform(-1, 1, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        heading = np.array([np.cos(angle), np.sin(angle)])
        for t in range(steps):
            a = np.clip(heading + 0.1 * rng.normal(size=2), -1, 1)
            obs.append(np.concatenate([p, rng.uniform(-2, 2, size=2)]))
            achieved.append(p.copy())
            acts.append(a)
            ends.append(t == steps - 1)
            p = p + 0.1 * a
    return Dataset(
        observations=np.array(obs, np.float32),
        actions=np.array(acts, np.float32),
        rewards=np.zeros(len(obs), np.float32),
        terminals=np.zeros(len(obs), bool),
        timeouts=np.array(ends),
        metadata={
            "action_space": {"type": "box", "low": [-1.0, -1.0], "high": [1.0, 1.0]},
            "extra_arrays": {"achieved_goal": np.array(achieved, np.float32)},
        },
        source="point-to-goal",
    )


def test_rvs_g_moves_toward_the_goal_it_is_given_and_resumes_exactly(tmp_path):
    ds = point_to_goal_dataset()
    kw = dict(steps=300, seed=0, config={"hidden_dims": (64, 64)}, eval_every=0, **FAST)
    run = policyfit.train("rvs_g", ds, out=tmp_path / "run", save_every=150, **kw)
    policy = policyfit.load_policy(run.run_dir)
    assert not policy.stateful
    # from the origin, goals in 8 directions at distance 0.4: the action must point at the goal
    angles = np.arange(8) * np.pi / 4
    goals = 0.4 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    obs = np.concatenate([np.zeros((8, 2)), goals], axis=1).astype(np.float32)
    actions, _ = policy.act(obs, ())
    actions = np.asarray(actions)
    cosine = np.sum(actions * goals, axis=1) / (np.linalg.norm(actions, axis=1) * 0.4)
    assert np.all(cosine > 0.95), cosine  # different goals, different (right) actions

    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir, killed)
    shutil.rmtree(killed / "checkpoints" / "step_300")
    resumed = policyfit.train(None, ds, steps=300, resume=killed, progress=False)
    assert resumed.summary["resumed_from_step"] == 150
    for a, b in zip(
        jax.tree_util.tree_leaves(run.state), jax.tree_util.tree_leaves(resumed.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
