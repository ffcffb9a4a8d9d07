"""MBRCSL: the ensemble's Gaussian NLL and the return filter by hand, and stitching on a tiny task.

The stitching task is a point on a line, ``x' = x + 0.1 a``, ``a`` in [-1, 1], reward
``1 - |x' - 1|``, 30 steps from ``x = 0``. Two sub-optimal sources: one runs right to 0.5 and holds
there; the other detours left to -0.5, then runs to the goal 1 and holds. Running straight to 1
(the first half of source 1 joined to the second half of source 2) is in no episode and earns far
more than either source. MBRCSL's kept rollouts must beat the data's best return in the true
dynamics, and so must the RCSL policy trained on them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import policyfit
from policyfit.algos.base import DatasetSpec
from policyfit.algos.mbrcsl import (
    MBRCSL,
    MBRCSLConfig,
    ensemble_gaussian_nll,
    keep_best,
    return_filter,
    returns_to_go,
    soft_clamp,
)
from policyfit.algos.registry import get_algorithm
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError

H = 30  # steps per episode
SPEED = 0.1  # x' = x + SPEED * a


def reward(x_next):
    return 1.0 - np.abs(x_next - 1.0)


def episode(targets, rng, noise=0.05):
    """A P-controller through ``targets`` (next target within 0.05), Gaussian action noise."""
    x, todo = 0.0, list(targets)
    obs, acts, rews, nxt = [], [], [], []
    for _ in range(H):
        if len(todo) > 1 and abs(x - todo[0]) < 0.05:
            todo.pop(0)
        a = float(np.clip(10.0 * (todo[0] - x) + noise * rng.normal(), -1.0, 1.0))
        x2 = x + SPEED * a
        obs.append([x])
        acts.append([a])
        rews.append(reward(x2))
        nxt.append([x2])
        x = x2
    return obs, acts, rews, nxt


def stitch_dataset(episodes_per_source=20, seed=0):
    rng = np.random.default_rng(seed)
    parts = [episode([0.5], rng) for _ in range(episodes_per_source)]
    parts += [episode([-0.5, 1.0], rng) for _ in range(episodes_per_source)]
    cat = [np.concatenate([np.asarray(p[i], np.float32) for p in parts]) for i in range(4)]
    timeouts = np.zeros(len(cat[0]), bool)
    timeouts[H - 1 :: H] = True
    return Dataset(
        observations=cat[0],
        actions=cat[1],
        rewards=cat[2],
        terminals=np.zeros(len(cat[0]), bool),
        timeouts=timeouts,
        next_observations=cat[3],
        metadata={"action_space": {"type": "box", "low": [-1.0], "high": [1.0]}},
    )


def true_return(actions):
    """The return of an action sequence in the true dynamics from x = 0."""
    x, total = 0.0, 0.0
    for a in np.clip(actions, -1.0, 1.0):
        x = x + SPEED * float(a)
        total += reward(x)
    return total


# ------------------------------------------------------------------------------ loss level
def test_ensemble_gaussian_nll_by_hand():
    # two members, two samples, one dimension
    mean = jnp.array([[[1.0], [0.0]], [[2.0], [3.0]]])
    logvar = jnp.array([[[0.0], [0.0]], [[np.log(4.0)], [0.0]]])
    target = jnp.array([[0.0], [2.0]])
    weights = jnp.array([[1.0, 1.0], [2.0, 0.0]])
    # member 0: ((1-0)^2 + 0 + (0-2)^2 + 0) / 2 = 2.5
    # member 1: only sample 0 (weight 2): (2-0)^2 / 4 + log 4 = 1 + 1.3863
    got = ensemble_gaussian_nll(mean, logvar, target, weights)
    np.testing.assert_allclose(got, [2.5, 1.0 + np.log(4.0)], rtol=1e-6)


def test_soft_clamp_keeps_values_between_the_bounds():
    x = jnp.array([-100.0, 0.0, 100.0])
    got = soft_clamp(x, jnp.array(-10.0), jnp.array(0.5))
    assert float(got[0]) == pytest.approx(-10.0, abs=1e-4)
    assert float(got[2]) == pytest.approx(0.5, abs=1e-4)
    # 0 sits 0.5 below the upper bound: 0.5 - softplus(0.5) (the lower clamp adds ~0)
    assert float(got[1]) == pytest.approx(0.5 - np.log1p(np.exp(0.5)), abs=1e-4)


def test_return_filter_keeps_exactly_the_rollouts_above_the_threshold():
    buffer = {"returns": jnp.array([9.0, 0.0, 0.0, 0.0]), "x": jnp.array([[9.0], [0], [0], [0]])}
    rollouts = {
        "returns": jnp.array([5.0, 1.0, 4.0, 7.0, 8.0]),
        "x": jnp.array([[50.0], [10.0], [40.0], [70.0], [80.0]]),
    }
    # threshold 4: 5, 7 and 8 pass (4 does not: strictly above); one slot was taken, three free
    out, count = return_filter(buffer, jnp.asarray(1, jnp.int32), rollouts, 4.0)
    assert int(count) == 4
    np.testing.assert_array_equal(out["returns"], [9.0, 5.0, 7.0, 8.0])
    np.testing.assert_array_equal(out["x"][:, 0], [9.0, 50.0, 70.0, 80.0])
    # the buffer is full: nothing more is written
    out2, count2 = return_filter(out, count, rollouts, 0.0)
    assert int(count2) == 4
    np.testing.assert_array_equal(out2["returns"], out["returns"])
    # nobody passes: the count stays, the buffer is unchanged
    empty = {k: jnp.zeros_like(v) for k, v in buffer.items()}
    out3, count3 = return_filter(empty, jnp.asarray(0, jnp.int32), rollouts, 100.0)
    assert int(count3) == 0 and float(jnp.abs(out3["returns"]).sum()) == 0.0
    # the fallback then keeps the best ones, best first
    best, n = keep_best(empty, rollouts)
    assert int(n) == 4
    np.testing.assert_array_equal(best["returns"], [8.0, 7.0, 5.0, 4.0])


def test_returns_to_go_of_a_rollout():
    np.testing.assert_allclose(returns_to_go(jnp.array([[1.0, 2.0, 3.0]])), [[6.0, 5.0, 3.0]])


def test_config_errors_name_the_field():
    spec = DatasetSpec(observation_dim=1, action_dim=1, return_max=1.0, max_episode_length=5)
    with pytest.raises(ConfigError, match="dynamics_elites"):
        MBRCSL(MBRCSLConfig(dynamics_ensemble=3, dynamics_elites=4)).setup(spec)
    with pytest.raises(ConfigError, match="one value per layer"):
        MBRCSL(MBRCSLConfig(dynamics_hidden_dims=(8,))).setup(spec)
    assert get_algorithm("MBRCSL") is MBRCSL
    defaults = MBRCSLConfig()  # run_mbrcsl_maze.py
    assert (defaults.dynamics_ensemble, defaults.dynamics_elites) == (7, 5)
    assert defaults.dynamics_hidden_dims == (200, 200, 200, 200)
    assert (defaults.learning_rate, defaults.weight_decay) == (5e-5, 0.1)


# ------------------------------------------------------------------------------ learning
TINY = {
    "hidden_dims": (64, 64),
    "learning_rate": 3e-3,
    "weight_decay": 0.0,
    "batch_size": 128,
    "dynamics_ensemble": 3,
    "dynamics_elites": 2,
    "dynamics_hidden_dims": (32, 32),
    "dynamics_weight_decay": (0.0, 0.0, 0.0),
    "dynamics_lr": 3e-3,
    "behavior_hidden_dims": (32, 32),
    "behavior_components": 3,
    "behavior_lr": 3e-3,
    "pretrain_steps": 1500,
    "rollout_batch": 100,
    "rollout_trajectories": 30,
    "rollout_rounds": 10,
}


def test_mbrcsl_stitches_two_sources_past_the_data_best(tmp_path):
    ds = stitch_dataset()
    best = float(ds.episode_returns().max())
    stitched = true_return(np.ones(10).tolist() + [0.0] * (H - 10))
    assert stitched > best + 5  # the task needs stitching
    run = policyfit.train(
        "mbrcsl",
        ds,
        steps=600,
        seed=0,
        config=TINY,
        out=tmp_path / "run",
        progress=False,
        fast_compile=True,
        fuse=300,
    )
    state = run.state
    kept = int(state["rollout_count"])
    assert kept == TINY["rollout_trajectories"] and int(state["rollout_fallback"]) == 0
    rolls = jax.device_get(state["rollouts"])
    # every kept rollout beats the data's best in the model ...
    assert (rolls["returns"][:kept] > best).all()
    # ... and replayed in the true dynamics most of them do too: the model stitched
    replayed = np.array([true_return(rolls["actions"][i, :, 0]) for i in range(kept)])
    assert np.median(replayed) > best + 2, (replayed, best)
    # the RCSL policy, conditioned on the best kept return, beats the data's best for real
    policy = policyfit.load_policy(run.run_dir)
    carry = policy.initial_carry(1)
    x, total = np.zeros((1, 1), np.float32), 0.0
    for _ in range(H):
        action, carry = policy.act(x, carry)
        x = x + SPEED * np.clip(np.asarray(action), -1, 1)
        r = reward(float(x[0, 0]))
        carry = policy.observe_reward(carry, np.array([r], np.float32))
        total += r
    assert total > best + 5, (total, best, float(state["goal"]))  # stitched optimum: ~25.5


def test_the_policy_conditions_on_the_saved_goal_unless_given_a_target():
    spec = DatasetSpec(observation_dim=1, action_dim=1, return_max=10.0, max_episode_length=5)
    small = dict(
        hidden_dims=(16,),
        dynamics_hidden_dims=(8,),
        dynamics_weight_decay=(0.0, 0.0),
        behavior_hidden_dims=(8,),
    )
    algo = MBRCSL(MBRCSLConfig(**small, rollout_trajectories=2))
    params = algo.policy_params(algo.init(spec, jax.random.PRNGKey(0)))
    params = {**params, "goal": jnp.asarray(25.0)}  # what pretraining's rollouts set
    obs = jnp.array([[0.3], [0.3]])
    carry = algo.observe_reward(algo.initial_carry(2), jnp.array([5.0, 5.0]))
    np.testing.assert_allclose(algo.conditioning(params, carry), [20.0, 20.0])  # 25 - 5
    fixed = MBRCSL(MBRCSLConfig(**small, rollout_trajectories=2, target_return=20.0))
    fixed.setup(spec)
    carry_fixed = fixed.initial_carry(2)  # 20, nothing earned yet: the same g as above
    np.testing.assert_allclose(fixed.conditioning(params, carry_fixed), [20.0, 20.0])
    a, _ = algo.act(params, obs, carry)
    b, _ = fixed.act(params, obs, carry_fixed)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    c, _ = fixed.act(params, obs, fixed.observe_reward(carry_fixed, jnp.array([15.0, 15.0])))
    assert not np.allclose(a, c)  # the target is an input
