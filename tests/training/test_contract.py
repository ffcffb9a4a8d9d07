"""The algorithm contract end to end: discrete BC and RvS-R (which the old contract could not host),
a pretraining phase, carry-aware rollouts and the action-space check.

Every run is real: CartPole-v1 and Pendulum-v1 data collected here, JAX training, gymnasium
rollouts, the CLI through click's runner, the HTML report on disk.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

import policyfit
from pendulum_data import pendulum_dataset
from policyfit.algos.base import ALGORITHMS, AlgoConfig, Algorithm, register
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset
from policyfit.envs.datasets import make_dataset
from policyfit.envs.rollout import rollout_returns
from policyfit.errors import ConfigError, PolicyfitError

FAST = dict(progress=False, fast_compile=True, fuse=25)


def leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


@pytest.fixture(scope="module")
def cartpole():
    return make_dataset("cartpole-medium", size=6_000, seed=0)


@pytest.fixture(scope="module")
def pendulum():
    return pendulum_dataset(episodes=6)


# --------------------------------------------------------------------------- discrete BC
def test_discrete_bc_beats_its_data_resumes_exactly_and_loads(cartpole, tmp_path):
    kw = dict(
        steps=300,
        seed=1,
        config={"hidden_dims": (32, 32)},
        eval_every=150,
        save_every=100,
        eval_episodes=5,
        **FAST,
    )
    run = policyfit.train("discrete_bc", cartpole, out=tmp_path / "full", **kw)
    summary = run.summary
    assert summary["action_space"] == "discrete"
    # the epsilon-greedy controller's data scores ~35; the cloned controller keeps the pole up
    assert summary["data_normalized_return_mean"] < 50
    assert summary["final_normalized_score"] > summary["data_normalized_return_mean"] + 30

    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir, killed)
    shutil.rmtree(killed / "checkpoints" / "step_300")
    (killed / "summary.json").unlink()
    resumed = policyfit.train(None, cartpole, steps=300, resume=killed, progress=False)
    assert resumed.summary["resumed_from_step"] == 200
    for a, b in zip(leaves(run.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)

    policy = policyfit.load_policy(run.run_dir)
    obs = cartpole.observations[:16]
    actions = policy(obs)
    assert actions.dtype == np.int32 and actions.shape == (16,)
    assert set(np.unique(actions)) <= {0, 1}
    # acting agrees with the controller the data came from on most states
    from policyfit.envs.classic import controller_action

    agree = np.mean([a == controller_action(o) for a, o in zip(actions, obs, strict=True)])
    assert agree > 0.8
    returns, _ = rollout_returns(policy, "CartPole-v1", episodes=3, seed=5)
    assert returns.mean() > 300


def test_continuous_learner_on_discrete_data_is_a_clear_error(cartpole, pendulum, tmp_path):
    with pytest.raises(
        ConfigError,
        match="iql learns continuous actions; this dataset's actions are discrete.*discrete_bc",
    ):
        policyfit.train("iql", cartpole, steps=10, out=tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="discrete_bc learns discrete actions"):
        policyfit.train("discrete_bc", pendulum, steps=10, out=tmp_path / "b", progress=False)
    assert not (tmp_path / "a" / "config.json").exists()


def test_discrete_bc_through_the_cli_train_eval_report(cartpole, tmp_path):
    data = save_dataset(cartpole, tmp_path / "cartpole.npz")
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = [
        "train",
        "discrete_bc",
        "--dataset",
        str(data),
        "--steps",
        "100",
        "--out",
        str(out),
        "--eval-every",
        "0",
        "--eval-episodes",
        "2",
        "--set",
        "hidden_dims=16,16",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["eval", str(out), "--episodes", "2", "--json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output)
    assert evaluation["env_id"] == "CartPole-v1"
    assert evaluation["normalized_score_ci_low"] is not None  # reference scores from the data
    report = tmp_path / "report.html"
    result = runner.invoke(cli, ["report", str(out), "-o", str(report)])
    assert result.exit_code == 0, result.output
    assert "discrete_bc" in report.read_text()
    listing = json.loads(runner.invoke(cli, ["algos", "--json"]).output)
    assert listing["discrete_bc"]["action_spaces"] == "discrete"
    assert listing["rvs_r"]["action_spaces"] == "continuous"
    assert listing["rvs_r"]["stateful_policy"] and not listing["iql"]["stateful_policy"]


# --------------------------------------------------------------------------- RvS-R
def test_rvs_r_trains_resumes_exactly_and_acts_on_its_carry(pendulum, tmp_path):
    kw = dict(
        steps=120,
        seed=2,
        config={"hidden_dims": (32, 32), "batch_size": 64},
        eval_every=60,
        save_every=40,
        eval_episodes=2,
        **FAST,
    )
    run = policyfit.train("rvs_r", pendulum, out=tmp_path / "full", **kw)
    assert run.summary["final_return_mean"] is not None
    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir, killed)
    shutil.rmtree(killed / "checkpoints" / "step_120")
    resumed = policyfit.train(None, pendulum, steps=120, resume=killed, progress=False)
    assert resumed.summary["resumed_from_step"] == 80
    for a, b in zip(leaves(run.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)

    policy = policyfit.load_policy(run.run_dir)
    assert policy.stateful
    with pytest.raises(PolicyfitError, match="keeps a carry"):
        policy(pendulum.observations[0])
    carry = policy.initial_carry(2)
    # default target: the best episode return in the data
    np.testing.assert_allclose(carry["return_to_go"], pendulum.episode_returns().max(), rtol=1e-6)
    obs = pendulum.observations[:2]
    actions, carry = policy.act(obs, carry)
    assert actions.shape == (2, 1) and carry["timestep"].tolist() == [1, 1]
    carry = policy.observe_reward(carry, np.array([-3.0, -1.0]))
    np.testing.assert_allclose(
        carry["return_to_go"], pendulum.episode_returns().max() + np.array([3.0, 1.0]), rtol=1e-6
    )
    # the target is an input: asking for another return changes the actions
    low = policyfit.load_policy(run.run_dir, target_return=-1500.0)
    a_low, _ = low.act(obs, low.initial_carry(2))
    a_high, _ = policy.act(obs, policy.initial_carry(2))
    assert not np.allclose(a_low, a_high)
    result = policyfit.evaluate(run.run_dir, episodes=2, target_return=-1500.0)
    assert result["episodes"] == 2


def test_rvs_r_omega_is_the_average_reward_to_go():
    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.rvs import RvSR

    algo = RvSR()
    algo.setup(
        DatasetSpec(
            observation_dim=1,
            action_dim=1,
            max_episode_length=10,
            reward_abs_mean=1.0,
            return_max=5.0,
        )
    )
    # 6 reward left over the last 4 steps of a 10-step horizon (t = 6): 6 / (10 - 6)
    assert float(algo.omega(jnp.array(6.0), jnp.array(6.0))) == pytest.approx(1.5)


class RecordingPolicy:
    """A carry-aware policy whose carry sums the rewards it is fed."""

    def initial_carry(self, batch_size):
        return np.zeros(batch_size)

    def act(self, obs, carry, key=None):
        return np.zeros((len(obs), 1)), carry

    def observe_reward(self, carry, reward):
        self.last = carry + reward
        return self.last


def test_rollouts_feed_every_reward_into_the_carry():
    policy = RecordingPolicy()
    returns, lengths = rollout_returns(policy, "Pendulum-v1", episodes=3, seed=0)
    # Pendulum never terminates early, so the carry summed exactly each episode's rewards
    assert lengths.tolist() == [200, 200, 200]
    np.testing.assert_allclose(policy.last, returns, rtol=1e-5)


def test_rollouts_of_discrete_actions():
    returns, lengths = rollout_returns(
        lambda obs: np.ones(len(obs), np.int64), "CartPole-v1", episodes=2, seed=0
    )
    assert np.all(lengths < 30) and np.all(returns == lengths)  # always pushing right falls fast


# --------------------------------------------------------------------------- pretraining
@dataclass(frozen=True)
class CountingConfig(AlgoConfig):
    pretrain: int = 30
    batch_size: int = 8


class Counting(Algorithm):
    """Counts its pretraining and main updates; its 'policy' is the pretrained mean action."""

    Config = CountingConfig
    policy_keys = ("mean_action",)

    @property
    def pretrain_steps(self):
        return self.config.pretrain

    def init(self, spec, key):
        self.setup(spec)
        return {
            "pretrain_updates": jnp.zeros((), jnp.int32),
            "updates": jnp.zeros((), jnp.int32),
            "mean_action": jnp.zeros(spec.action_dim),
            "noise": jnp.zeros(()),
        }

    def pretrain_update(self, state, batch, key):
        mean = 0.9 * state["mean_action"] + 0.1 * batch["actions"].mean(0)
        return dict(state, pretrain_updates=state["pretrain_updates"] + 1, mean_action=mean), {
            "gap": jnp.abs(mean).sum()
        }

    def update(self, state, batch, key):
        # main updates must see the pretrained state
        noise = state["noise"] + jax.random.normal(key) * (state["pretrain_updates"] == 30)
        return dict(state, updates=state["updates"] + 1, noise=noise), {"noise": noise}

    def act(self, params, obs, carry, key=None):
        return jnp.broadcast_to(
            params["mean_action"], (obs.shape[0], params["mean_action"].size)
        ), carry


@pytest.fixture
def counting():
    """Registered only while a test uses it, so the registry other tests see stays the built-ins."""
    register("counting_test")(Counting)
    yield Counting
    ALGORITHMS.pop("counting_test", None)


def test_pretraining_runs_first_once_and_survives_resume(pendulum, tmp_path, counting):
    kw = dict(steps=50, seed=0, eval_every=0, save_every=20, eval_episodes=1, **FAST)
    run = policyfit.train(
        "counting_test", pendulum, out=tmp_path / "full", keep_checkpoints=10, **kw
    )
    # the pretrained state is checkpointed as step 0, before any main update
    assert sorted(p.name for p in (run.run_dir / "checkpoints").iterdir()) == [
        "step_0",
        "step_20",
        "step_40",
        "step_50",
    ]
    assert int(run.state["pretrain_updates"]) == 30 and int(run.state["updates"]) == 50
    assert float(run.state["noise"]) != 0.0  # the main phase saw the pretrained state
    rows = [json.loads(x) for x in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["pretrain_step"] for r in rows if "pretrain_step" in r] == [25, 30]
    assert run.summary["pretrain_steps"] == 30

    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir, killed)
    for step in ("step_40", "step_50"):
        shutil.rmtree(killed / "checkpoints" / step, ignore_errors=True)
    resumed = policyfit.train(None, pendulum, steps=50, resume=killed, progress=False)
    assert resumed.summary["resumed_from_step"] == 20
    assert int(resumed.state["pretrain_updates"]) == 30  # not pretrained twice
    for a, b in zip(leaves(run.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_register_rejects_a_taken_name_and_non_algorithms():
    with pytest.raises(ValueError, match="already registered"):
        register("TD3+BC")(type("Other", (Algorithm,), {}))
    with pytest.raises(TypeError, match="Algorithm subclass"):
        register("nothing")(object)


def test_rvs_r_follows_the_return_it_is_asked_for(tmp_path):
    """Return conditioning works: asking for the data's worst return gives a far worse policy
    than asking for its best (the data mixes random and swing-up episodes)."""
    ds = pendulum_dataset(episodes=20)
    returns = ds.episode_returns()
    run = policyfit.train(
        "rvs_r",
        ds,
        steps=1500,
        seed=0,
        out=tmp_path / "rvs",
        config={"hidden_dims": (128, 128)},
        eval_every=0,
        eval_episodes=1,
        **FAST,
    )
    worst = policyfit.evaluate(run.run_dir, episodes=6, target_return=float(returns.min()))
    best = policyfit.evaluate(run.run_dir, episodes=6, target_return=float(returns.max()))
    assert best["return_mean"] > worst["return_mean"] + 300, (worst, best)


def test_rvs_r_through_the_cli_with_a_target(pendulum, tmp_path):
    data = save_dataset(pendulum, tmp_path / "pendulum.npz")
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = [
        "train",
        "rvs_r",
        "--dataset",
        str(data),
        "--steps",
        "50",
        "--out",
        str(out),
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--set",
        "hidden_dims=16,16",
    ]
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(
        cli, ["eval", str(out), "--episodes", "1", "--set", "target_return=-100", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["env_id"] == "Pendulum-v1"
    bad = runner.invoke(cli, ["eval", str(out), "--set", "target_retrn=1"])
    assert bad.exit_code == 2 and "unknown config key 'target_retrn'" in bad.output


def test_markov_only_evaluations_reject_a_carry_policy_with_a_clear_error(pendulum, tmp_path):
    run = policyfit.train(
        "rvs_r",
        pendulum,
        steps=20,
        out=tmp_path / "rvs",
        config={"hidden_dims": (8,)},
        eval_every=0,
        eval_episodes=1,
        **FAST,
    )
    policy = policyfit.load_policy(run.run_dir)
    with pytest.raises(PolicyfitError, match="FQE evaluates Markov policies only"):
        policyfit.fitted_q_evaluation(pendulum, policy)
    with pytest.raises(PolicyfitError, match="smoothing certificate covers Markov policies"):
        policyfit.certify_policy(policy, "Pendulum-v1", [0.1], 0.1, episodes=2)
