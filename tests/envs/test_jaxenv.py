"""The gymnax ports against the reference environments, and the jitted collector's invariants."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.envs import jaxenv
from policyfit.envs.jaxenv import DISCRETE_ENVS, collect, encode_obs_np, random_act_fn


def _gymnax_state(key: str, raw: np.ndarray, time: int):
    """The gymnax state holding gymnasium's internal state ``raw``."""
    import jax.numpy as jnp

    env, _ = jaxenv.make_gymnax(key)
    module = type(env).__module__
    import importlib

    EnvState = importlib.import_module(module).EnvState
    fields = {
        "cartpole": ("x", "x_dot", "theta", "theta_dot"),
        "acrobot": ("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
        "mountaincar": ("position", "velocity"),
    }[key]
    values = {f: jnp.asarray(v, jnp.float32) for f, v in zip(fields, raw, strict=True)}
    return EnvState(**values, time=time)


@pytest.mark.parametrize("key", ["cartpole", "acrobot", "mountaincar"])
def test_one_step_dynamics_match_gymnasium(key):
    """From gymnasium's own state, one gymnax step gives gymnasium's next observation, reward and
    termination (float32 vs float64: to 1e-4), over 300 random-action steps with resets."""
    import gymnasium as gym
    import jax

    spec = DISCRETE_ENVS[key]
    env, params = jaxenv.make_gymnax(key)
    step = jax.jit(lambda s, a: env.step_env(jax.random.PRNGKey(0), s, a, params))
    ref = gym.make(spec.env_id).unwrapped
    rng = np.random.default_rng(0)
    ref.reset(seed=0)
    steps = terminals = 0
    for t in range(300):
        raw = np.array(ref.state, dtype=np.float64)
        action = int(rng.integers(spec.n_actions))
        obs, reward, terminal, _, _ = ref.step(action)
        j_obs, _, j_reward, j_terminal, _ = step(_gymnax_state(key, raw, t), action)
        np.testing.assert_allclose(np.asarray(j_obs), obs, rtol=1e-4, atol=1e-4)
        assert float(j_reward) == pytest.approx(reward)
        assert bool(j_terminal) == terminal
        steps += 1
        terminals += terminal
        if terminal:
            ref.reset(seed=t)
    assert steps == 300
    if key == "cartpole":
        assert terminals > 5  # the random policy drops the pole: terminations were compared


@pytest.mark.slow
@pytest.mark.parametrize("key", ["breakout", "spaceinvaders"])
def test_minatar_port_returns_match_the_reference(key):
    """The random policy's mean return in the gymnax port and in the reference ``minatar`` game
    (no sticky actions, minimal action set) agree within 4 standard errors (200 episodes each)."""
    import gymnasium as gym

    spec = DISCRETE_ENVS[key]
    ported = jaxenv.episode_returns(key, random_act_fn(spec.n_actions), None, 200, seed=1)
    jaxenv.register_envs()
    ref = gym.make(spec.env_id)
    rng = np.random.default_rng(1)
    returns = []
    for ep in range(200):
        ref.reset(seed=ep)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = ref.step(int(rng.integers(spec.n_actions)))
            total, done = total + r, term or trunc
        returns.append(total)
    returns = np.asarray(returns)
    se = np.sqrt(ported.var() / len(ported) + returns.var() / len(returns))
    assert abs(ported.mean() - returns.mean()) < 4 * se, (ported.mean(), returns.mean(), se)
    assert ported.mean() > 0 and returns.mean() > 0  # both score: rewards were compared


def test_minatar_encoding_by_hand():
    """The paper's MinAtar input: channel index (1-based) of the highest set channel / C - 0.5."""
    grid = np.zeros((10, 10, 4), bool)
    grid[0, 0, 0] = True  # channel 1 of 4 -> 1/4 - 0.5
    grid[0, 1, 1] = grid[0, 1, 3] = True  # the max channel wins: 4/4 - 0.5
    out = encode_obs_np(DISCRETE_ENVS["breakout"], grid)
    assert out.shape == (100,) and out.dtype == np.float32
    assert out[0] == pytest.approx(-0.25) and out[1] == pytest.approx(0.5)
    assert out[2] == pytest.approx(-0.5)
    np.testing.assert_allclose(np.asarray(jaxenv.encode_obs(DISCRETE_ENVS["breakout"], grid)), out)


def test_collect_whole_episodes_deterministic():
    """Same seed, same arrays; consecutive inside episodes; ends are terminal xor timeout; only
    the last episode may be cut; a different seed gives different data."""
    act = random_act_fn(2)
    a = collect("cartpole", act, None, n=3_000, seed=3)
    b = collect("cartpole", act, None, n=3_000, seed=3)
    c = collect("cartpole", act, None, n=3_000, seed=4)
    for field in a:
        np.testing.assert_array_equal(a[field], b[field])
    assert not np.array_equal(a["observations"], c["observations"])
    ends = a["terminals"] | a["timeouts"]
    assert not np.any(a["terminals"] & a["timeouts"])
    inside = ~ends[:-1]
    np.testing.assert_array_equal(
        a["next_observations"][:-1][inside], a["observations"][1:][inside]
    )
    assert ends[-1]
    # CartPole's random policy: episodes of ~22 steps end by termination, none by the 500 cap
    assert a["timeouts"][:-1].sum() == 0 and a["terminals"].sum() > 100
    lengths = np.diff(np.flatnonzero(np.r_[True, ends]))
    assert lengths.max() <= DISCRETE_ENVS["cartpole"].max_episode_steps


def test_timeouts_at_the_episode_cap():
    """MountainCar's random policy never reaches the flag: every episode is cut at 200 steps
    and stored as a timeout, not a terminal."""
    out = collect("mountaincar", random_act_fn(3), None, n=1_000, seed=0)
    assert out["terminals"].sum() == 0
    np.testing.assert_array_equal(np.flatnonzero(out["timeouts"]), np.arange(199, 1_000, 200))
