"""Decision Transformer: the context carry step by step (hand-checked), the loss over valid window
positions, carry-aware rollouts, save -> load_policy, and learning on the Pendulum data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import policyfit
from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.dt import DecisionTransformer, DTConfig
from policyfit.algos.registry import get_algorithm
from policyfit.envs.rollout import rollout_returns
from policyfit.errors import ConfigError

TINY = {"context_length": 2, "embed_dim": 8, "n_layer": 1, "dropout": 0.0}


def tiny(**overrides):
    spec = DatasetSpec(
        observation_dim=1,
        action_dim=1,
        action_low=(-2.0,),
        action_high=(2.0,),
        return_max=5.0,
        max_episode_length=10,
    )
    algo = DecisionTransformer(DTConfig(**{**TINY, "return_scale": 10.0, **overrides}))
    state = algo.init(spec, jax.random.PRNGKey(1))
    return algo, algo.policy_params(state)


def network_action(algo, params, rtg, obs, acts, steps, position):
    """The network on a hand-built window, the action (environment units) at ``position``."""
    pred = algo.predict(
        params["actor"],
        params,
        jnp.asarray([rtg], jnp.float32),
        jnp.asarray(obs, jnp.float32).reshape(1, -1, 1),
        jnp.asarray(acts, jnp.float32).reshape(1, -1, 1),
        jnp.asarray([steps], jnp.int32),
    )
    return float(pred[0, position, 0]) * 2.0  # unit box [-1, 1] -> [-2, 2]


def test_two_steps_of_act_and_observe_reward_update_the_window_as_dt_evaluates():
    algo, params = tiny(target_return=10.0)
    carry = algo.initial_carry(1)
    assert carry["return_to_go"].tolist() == [10.0] and carry["length"].tolist() == [0]

    a0, carry = algo.act(params, jnp.array([[1.0]]), carry)
    a0 = float(a0[0, 0])
    assert carry["observations"][0, :, 0].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(carry["returns_to_go"][0], [1.0, 0.0])  # 10 / scale 10
    assert carry["timesteps"][0].tolist() == [0, 0] and carry["length"].tolist() == [1]
    assert carry["timestep"].tolist() == [1]
    np.testing.assert_allclose(carry["actions"][0, :, 0], [a0 / 2.0, 0.0], atol=1e-6)
    # the action is the network's at the first position of the window [R=1, s=1, a=0]
    want = network_action(algo, params, [1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0, 0], 0)
    assert a0 == pytest.approx(want, abs=1e-5)

    carry = algo.observe_reward(carry, jnp.array([2.0]))
    np.testing.assert_allclose(carry["return_to_go"], [8.0])  # 10 - 2
    a1, carry = algo.act(params, jnp.array([[3.0]]), carry)
    a1 = float(a1[0, 0])
    assert carry["observations"][0, :, 0].tolist() == [1.0, 3.0]
    np.testing.assert_allclose(carry["returns_to_go"][0], [1.0, 0.8])  # R_1 = R_0 - r_0 / scale
    assert carry["timesteps"][0].tolist() == [0, 1] and carry["length"].tolist() == [2]
    np.testing.assert_allclose(carry["actions"][0, :, 0], [a0 / 2.0, a1 / 2.0], atol=1e-6)
    want = network_action(algo, params, [1.0, 0.8], [1.0, 3.0], [a0 / 2.0, 0.0], [0, 1], 1)
    assert a1 == pytest.approx(want, abs=1e-5)

    # the window is full (K = 2): the next step shifts it left by one
    carry = algo.observe_reward(carry, jnp.array([1.0]))
    np.testing.assert_allclose(carry["return_to_go"], [7.0])
    a2, carry = algo.act(params, jnp.array([[5.0]]), carry)
    assert carry["observations"][0, :, 0].tolist() == [3.0, 5.0]
    np.testing.assert_allclose(carry["returns_to_go"][0], [0.8, 0.7])
    assert carry["timesteps"][0].tolist() == [1, 2] and carry["length"].tolist() == [2]
    np.testing.assert_allclose(carry["actions"][0, 0, 0], a1 / 2.0, atol=1e-6)
    want = network_action(algo, params, [0.8, 0.7], [3.0, 5.0], [a1 / 2.0, 0.0], [1, 2], 1)
    assert float(a2[0, 0]) == pytest.approx(want, abs=1e-5)


def test_act_is_jittable_and_padding_after_the_newest_step_is_ignored():
    algo, params = tiny(context_length=4)
    carry = algo.initial_carry(3)
    act = jax.jit(algo.act)
    a, first = act(params, jnp.ones((3, 1)), carry)
    # garbage in the not-yet-used slots must not change the action (causal attention)
    noisy = dict(carry, observations=carry["observations"] + 7.0, actions=carry["actions"] - 0.5)
    b, _ = act(params, jnp.ones((3, 1)), noisy)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert first["length"].tolist() == [1, 1, 1]


def test_the_loss_covers_valid_positions_only():
    algo, params = tiny(context_length=3)
    state = {**params, "actor_opt": None}
    batch = {
        "observations": jnp.array([[[0.5], [1.0], [0.0]]]),
        "actions": jnp.array([[[1.0], [-1.0], [0.0]]]),
        "returns_to_go": jnp.array([[4.0, 3.0, 0.0]]),
        "timesteps": jnp.array([[3, 4, 0]], jnp.int32),
        "mask": jnp.array([[1.0, 1.0, 0.0]]),
    }
    unit = batch["actions"] / 2.0
    key = jax.random.PRNGKey(0)
    loss = float(algo.loss(params["actor"], state, batch, unit, key))
    pred = algo.predict(
        params["actor"],
        params,
        batch["returns_to_go"] / 10.0,
        batch["observations"],
        unit,
        batch["timesteps"],
    )[0, :, 0]
    hand = ((pred[0] - 0.5) ** 2 + (pred[1] + 0.5) ** 2) / 2.0
    assert loss == pytest.approx(float(hand), rel=1e-5)
    changed = dict(batch, observations=batch["observations"].at[0, 2].set(9.0))
    assert float(algo.loss(params["actor"], state, changed, unit, key)) == pytest.approx(loss)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="not divisible by n_head") as info:
        tiny(embed_dim=10, n_head=4)
    assert info.value.field == "n_head"
    assert not get_algorithm("dt").supports_discrete
    cfg = get_algorithm("DT").Config()  # gym/experiment.py of kzl/decision-transformer
    assert (cfg.context_length, cfg.n_layer, cfg.n_head, cfg.embed_dim) == (20, 3, 1, 128)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.warmup_steps, cfg.batch_size) == (
        1e-4,
        1e-4,
        10_000,
        64,
    )
    assert (cfg.return_scale, cfg.dropout, cfg.grad_clip) == (1000.0, 0.1, 0.25)


class Recorder:
    """A policy that remembers the last carry a rollout fed back."""

    def __init__(self, policy):
        self.policy, self.carry = policy, None

    def initial_carry(self, n):
        return self.policy.initial_carry(n)

    def act(self, obs, carry, key=None):
        return self.policy.act(obs, carry, key)

    def observe_reward(self, carry, reward):
        self.carry = self.policy.observe_reward(carry, reward)
        return self.carry


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small DT on the Pendulum data (swing-up and random episodes), asked for -250."""
    out = tmp_path_factory.mktemp("dt") / "run"
    config = {
        "context_length": 5,
        "embed_dim": 32,
        "n_layer": 1,
        "dropout": 0.0,
        "learning_rate": 3e-3,
        "warmup_steps": 50,
        "target_return": -250.0,  # a typical swing-up episode of the data
    }
    return policyfit.train(
        "dt",
        pendulum_dataset(),
        steps=1000,
        seed=0,
        config=config,
        out=out,
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=False,
    )


def test_learns_better_than_random_on_pendulum(trained):
    final = trained.summary["final_return_mean"]
    # Random: about -1200 (std of a 5-episode mean: ~130); clearly better: 400 above it.
    assert final > RANDOM_RETURN + 400, f"final return {final:.0f}"


def test_save_load_same_actions_and_a_rollout_with_the_carry(trained):
    policy = policyfit.load_policy(trained.run_dir, target_return=-100.0)
    assert policy.stateful and policy.initial_carry(1)["return_to_go"].tolist() == [-100.0]
    # the in-memory train state, acted on directly, against what was saved and loaded
    own = DecisionTransformer(policy.algo.config)
    own.setup(policy.spec)
    params = own.policy_params(trained.state)
    obs = pendulum_dataset(episodes=1).observations[:6].reshape(3, 2, 3)
    mine, theirs = own.initial_carry(3), policy.initial_carry(3)
    for t in range(2):
        want, mine = own.act(params, jnp.asarray(obs[:, t]), mine)
        got, theirs = policy.act(obs[:, t], theirs)
        np.testing.assert_allclose(got, want, atol=1e-5)
        mine = own.observe_reward(mine, jnp.array([-1.0, -2.0, -3.0]))
        theirs = policy.observe_reward(theirs, np.array([-1.0, -2.0, -3.0]))
    np.testing.assert_allclose(theirs["return_to_go"], [-98.0, -96.0, -94.0])

    recorder = Recorder(policy)
    returns, lengths = rollout_returns(recorder, "Pendulum-v1", episodes=2)
    assert lengths.tolist() == [200, 200]
    carry = recorder.carry
    assert carry["timestep"].tolist() == [200, 200] and carry["length"].tolist() == [5, 5]
    assert carry["timesteps"][0].tolist() == [195, 196, 197, 198, 199]
    np.testing.assert_allclose(carry["return_to_go"], -100.0 - returns, rtol=1e-4)
