"""The paper's online DQN: epsilon schedule, buffer codec, a short CartPole run, shipping."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.envs import dqn_behavior, jaxenv
from policyfit.errors import ConfigError
from policyfit.training.online_dqn import (
    OnlineDQNConfig,
    _obs_codec,
    epsilon_at_step,
    epsilon_schedule,
    train_online_dqn,
)

# Faster learning than the paper's Adam 1e-4, so that a few thousand steps show it.
QUICK = OnlineDQNConfig(learning_rate=1e-3, hidden_dims=(64, 64))


@pytest.fixture(autouse=True)
def _fast_compile(monkeypatch):
    monkeypatch.setenv("POLICYFIT_FAST_COMPILE", "1")


def test_epsilon_schedule_hand_computed():
    cfg = OnlineDQNConfig()
    got = [float(epsilon_schedule(u, cfg)) for u in (0, 100, 500, 999, 1000, 5000)]
    np.testing.assert_allclose(got, [1.0, 0.901, 0.505, 0.01099, 0.01, 0.01], rtol=1e-5)
    # the first update follows env step 33 (t > 32), so epsilon first moves at step 34
    assert [epsilon_at_step(t, cfg) for t in (0, 33)] == [1.0, 1.0]
    np.testing.assert_allclose(epsilon_at_step(34, cfg), 0.99901, rtol=1e-6)
    np.testing.assert_allclose(epsilon_at_step(533, cfg), 0.505, rtol=1e-6)
    np.testing.assert_allclose(epsilon_at_step(1033, cfg), 0.01, rtol=1e-5)


def test_the_loader_computes_the_training_epsilon():
    cfg = OnlineDQNConfig()
    steps = np.arange(0, 1_200)
    training = np.asarray(epsilon_schedule(np.maximum(steps - 33, 0), cfg))
    shipped = [dqn_behavior.online_epsilon(int(t), cfg.epsilon_record()) for t in steps]
    np.testing.assert_array_equal(np.asarray(shipped, np.float32), training)  # bitwise


def test_config_defaults_come_from_the_environment():
    cart = OnlineDQNConfig(key="cartpole").resolved()
    assert (cart.steps, cart.buffer, cart.discount, cart.evaluations) == (
        100_000,
        50_000,
        0.95,
        500,
    )
    assert (cart.eval_every, cart.chunk) == (200, 200)
    assert cart.snapshot_steps == [10_000 * k for k in range(11)]
    breakout = OnlineDQNConfig(key="Breakout-MinAtar").resolved()
    assert (breakout.key, breakout.steps, breakout.buffer, breakout.discount) == (
        "breakout",
        2_000_000,
        500_000,
        0.99,
    )
    assert (breakout.evaluations, breakout.eval_every, breakout.chunk) == (100, 20_000, 20_000)
    with pytest.raises(ConfigError, match="steps=5 must be >= snapshots=10"):
        OnlineDQNConfig(key="cartpole", steps=5).resolved()


@pytest.mark.parametrize("key", ["breakout", "asterix", "freeway", "spaceinvaders", "seaquest"])
def test_minatar_buffer_codec_is_exact(key):
    # random boolean grids cover every channel index k: the stored uint8 k decodes to exactly the
    # float32 that encode_obs computed (k / C - 0.5 with C = 4, 4, 7, 6, 10 channels)
    spec = jaxenv.get_discrete_env(key)
    env, params = jaxenv.make_gymnax(key)
    channels = env.observation_space(params).shape[-1]
    grids = np.random.default_rng(0).random((64, 10, 10, channels)) < 0.15
    frames = jaxenv.encode_obs(spec, grids)
    dtype, pack, unpack = _obs_codec(spec)
    packed = pack(frames)
    assert packed.dtype == dtype == np.uint8
    assert set(np.unique(np.asarray(packed)).tolist()) == set(range(channels + 1))
    np.testing.assert_array_equal(np.asarray(unpack(packed)), np.asarray(frames))  # bitwise


def test_short_cartpole_run_learns_snapshots_and_is_deterministic():
    config = dataclasses.replace(QUICK, evaluations=20)
    result = train_online_dqn(
        "cartpole", seed=0, steps=4_000, snapshots=4, progress=False, config=config,
        keep_transitions=True,
    )  # fmt: skip
    assert result.snapshot_steps == [0, 1000, 2000, 3000, 4000]
    assert len(result.snapshots) == 5 and result.eval_steps[:2] == [200, 400]
    first, last = (
        jax.tree_util.tree_leaves(s) for s in (result.snapshots[0], result.snapshots[-1])
    )
    assert first[0].shape == last[0].shape and not np.array_equal(first[0], last[0])

    random = jaxenv.episode_returns("cartpole", jaxenv.random_act_fn(2), None, 50, 10_000)
    assert random.mean() < 30
    assert result.best_return > 2 * random.mean() + 40, result.eval_returns
    greedy = dqn_behavior.network_act_fn(2, (64, 64), 0.0)
    final = jaxenv.episode_returns("cartpole", greedy, result.final_params, 20, 10_000)
    assert final.mean() > random.mean() + 30

    trans = result.transitions
    assert len(trans["rewards"]) == 4_000 and set(trans["rewards"].tolist()) == {1.0}
    ends = trans["terminals"] | trans["timeouts"]
    assert int(trans["terminals"].sum()) == sum(c["episodes"] for c in result.train_curve) - int(
        trans["timeouts"][:-1].sum()
    )
    cont = ~ends[:-1]
    np.testing.assert_array_equal(
        trans["next_observations"][:-1][cont], trans["observations"][1:][cont]
    )
    # the first 34 actions are uniform (epsilon 1): both actions appear
    assert set(trans["actions"][:34].tolist()) == {0, 1}
    assert result.train_curve[-1]["epsilon"] == pytest.approx(0.01)

    # the same seed again, with other chunks (other evaluation steps): the same run
    again = train_online_dqn(
        "cartpole", seed=0, steps=4_000, snapshots=4, progress=False,
        config=dataclasses.replace(QUICK, evaluations=8),
    )  # fmt: skip
    for a, b in zip(
        jax.tree_util.tree_leaves(again.snapshots),
        jax.tree_util.tree_leaves(result.snapshots),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_cli_ships_snapshots_and_keeps_other_keys(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"acrobot": {"file": "acrobot.msgpack"}}))
    args = ["behavior", "dqn", "cartpole", "--steps", "600", "--snapshots", "2"]
    args += ["--evaluations", "3", "--seed", "3", "--out", str(tmp_path), "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["acrobot"] == {"file": "acrobot.msgpack"}
    record = index["cartpole"]
    assert summary["sha256"] == record["sha256"]
    data = (tmp_path / "cartpole.msgpack").read_bytes()
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["bytes"] == len(data)
    assert record["snapshot_steps"] == [0, 300, 600] and record["snapshots"] == 2
    assert (record["online_steps"], record["buffer"], record["seed"]) == (600, 50_000, 3)
    assert record["epsilon"]["decay_updates"] == 1000 and record["epsilon"]["warmup"] == 32
    assert record["hidden_dims"] == [128, 128] and record["weights_dtype"] == "float16"
    assert [s for s, _ in record["eval_curve"]] == [200, 400, 600]
    assert record["online_best_return"] == max(r for _, r in record["eval_curve"])
    assert record["random_return"] > 5 and record["final_greedy_return"] > 0
    snaps = dqn_behavior.load_snapshots("cartpole", tmp_path)
    assert len(snaps) == 3
    assert snaps[0]["params"]["Dense_0"]["kernel"].shape == (128, 2)
