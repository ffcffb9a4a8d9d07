"""SAC: one update is finite and moves every part; a short run learns a one-step task."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import DatasetSpec
from policyfit.algos.sac import SAC, SACConfig


def _batch(rng: np.random.Generator, n: int, obs_dim: int = 3, act_dim: int = 2) -> dict:
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": (rng.random(n) < 0.1).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
    }


# One small config for every test, so the update compiles once.
SMALL = SAC(
    SACConfig(hidden_dims=(32, 32), batch_size=64, actor_lr=1e-3, critic_lr=1e-3, init_alpha=0.01)
)
small_update = jax.jit(SMALL.update)


def test_update_is_finite_and_changes_params_alpha_and_targets():
    state = SMALL.init(DatasetSpec(observation_dim=3, action_dim=2), jax.random.PRNGKey(0))
    new, metrics = small_update(state, _batch(np.random.default_rng(0), 64), jax.random.PRNGKey(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(new.step) == 1
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state, new)
    assert all(jax.tree_util.tree_leaves(changed.actor_params))
    assert all(jax.tree_util.tree_leaves(changed.critic_params))
    assert bool(changed.log_alpha)
    # Target critics move by tau towards the critics (Polyak averaging), not onto them.
    leaf = lambda p: jax.tree_util.tree_leaves(p)[0]  # noqa: E731
    expected = 0.005 * leaf(new.critic_params) + 0.995 * leaf(state.target_critic_params)
    np.testing.assert_allclose(leaf(new.target_critic_params), expected, rtol=1e-5, atol=1e-7)


def test_terminal_transitions_do_not_bootstrap():
    """With gamma * (1 - terminal) = 0 the critic target is the reward alone (Eq. 5)."""
    state = SMALL.init(DatasetSpec(observation_dim=3, action_dim=2), jax.random.PRNGKey(0))
    batch = _batch(np.random.default_rng(1), 64)
    batch["terminals"] = np.ones(64, np.float32)
    critic = SMALL.networks(2)[1]
    q = critic.apply(state.critic_params, batch["observations"], batch["actions"])
    expected = 0.5 * ((q - batch["rewards"][None]) ** 2).mean(axis=1).sum()
    _, metrics = small_update(state, batch, jax.random.PRNGKey(2))
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(expected), rtol=1e-5)


def test_target_entropy_defaults_to_minus_action_dim():
    assert SAC(SACConfig())._target_entropy(6) == -6.0
    assert SAC(SACConfig(target_entropy=-1.5))._target_entropy(6) == -1.5


def test_act_is_deterministic_without_key_and_in_bounds():
    state = SMALL.init(DatasetSpec(observation_dim=4, action_dim=3), jax.random.PRNGKey(0))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    a1, a2 = SMALL.act(state.actor_params, obs), SMALL.act(state.actor_params, obs)
    np.testing.assert_array_equal(a1, a2)
    sampled = SMALL.act(state.actor_params, obs, jax.random.PRNGKey(3))
    assert sampled.shape == (5, 3) and np.all(np.abs(sampled) <= 1.0)
    assert not np.allclose(sampled, a1)


def test_short_run_learns_a_one_step_task():
    """Contextual bandit: reward -|a - s_:2 / 2|^2, every step terminal. After a few hundred
    updates the deterministic action must be much closer to the optimum than at init."""
    rng = np.random.default_rng(0)
    n = 2048
    obs = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    data = {
        "observations": obs,
        "actions": actions,
        "rewards": -((actions - 0.5 * obs[:, :2]) ** 2).sum(axis=1).astype(np.float32),
        "terminals": np.ones(n, np.float32),
        "next_observations": obs,
    }
    state = SMALL.init(DatasetSpec(observation_dim=3, action_dim=2), jax.random.PRNGKey(0))
    test_obs = rng.uniform(-1, 1, size=(64, 3)).astype(np.float32)

    def error(params):
        return float(
            np.mean((np.asarray(SMALL.act(params, test_obs)) - 0.5 * test_obs[:, :2]) ** 2)
        )

    before = error(state.actor_params)
    for step in range(400):
        idx = rng.integers(0, n, size=64)
        state, metrics = small_update(
            state, {k: v[idx] for k, v in data.items()}, jax.random.PRNGKey(step)
        )
        assert np.isfinite(float(metrics["critic_loss"]))
    after = error(state.actor_params)
    assert after < 0.25 * before and after < 0.02, (before, after)
