"""The discrete suite's DQN behavior policies: index, snapshot loading, epsilon-greedy acting."""

from __future__ import annotations

import hashlib
import json

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from policyfit.envs import dqn_behavior as db
from policyfit.envs.jaxenv import collect
from policyfit.errors import PolicyfitError

HIDDEN = (8, 8)


def _snapshot(bias: tuple[float, float], seed: int) -> dict:
    """A cartpole Q-network whose output is exactly ``bias`` (the last kernel is zero)."""
    params = db.q_network(2, HIDDEN).init(jax.random.PRNGKey(seed), jnp.zeros((1, 4)))
    params = jax.tree_util.tree_map(np.asarray, params)
    head = params["params"]["Dense_0"]
    head["kernel"] = np.zeros_like(head["kernel"])
    head["bias"] = np.asarray(bias, np.float32)
    return params


@pytest.fixture
def shipped(tmp_path):
    """A hand-written ``cartpole`` record with three snapshots, stored as float16."""
    snaps = [_snapshot((1.0, 0.0), 0), _snapshot((0.0, 0.5), 1), _snapshot((0.0, 2.0), 2)]
    stored = [jax.tree_util.tree_map(lambda x: x.astype(np.float16), s) for s in snaps]
    data = flax.serialization.msgpack_serialize({"snapshots": stored})
    (tmp_path / "cartpole.msgpack").write_bytes(data)
    record = {
        "file": "cartpole.msgpack",
        "sha256": hashlib.sha256(data).hexdigest(),
        "hidden_dims": list(HIDDEN),
        "n_actions": 2,
        "obs_dim": 4,
        "snapshots": 2,
        "snapshot_steps": [0, 50, 100],
    }
    (tmp_path / "index.json").write_text(json.dumps({"cartpole": record}))
    return tmp_path, snaps


def test_snapshots_round_trip_as_float32(shipped):
    folder, snaps = shipped
    loaded = db.load_snapshots("CartPole-v1", folder)  # the gymnax id resolves to the key
    assert len(loaded) == 3
    for got, want in zip(loaded, snaps, strict=True):
        for a, b in zip(
            jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        ):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)  # float16 storage
    assert db.behavior_record("cartpole", folder)["snapshot_steps"] == [0, 50, 100]


def test_greedy_and_epsilon_greedy_actions(shipped):
    folder, _ = shipped
    snaps = db.load_snapshots("cartpole", folder)
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(20_000, 4)), jnp.float32)
    greedy = db.greedy_act_fn("cartpole", folder)
    assert np.asarray(greedy(snaps[0], obs, None)).tolist() == [0] * 20_000  # Q = (1, 0)
    assert set(np.asarray(greedy(snaps[2], obs, None)).tolist()) == {1}  # Q = (0, 2)
    noisy = db.q_act_fn("cartpole", 0.2, folder)
    actions = np.asarray(noisy(snaps[2], obs, jax.random.PRNGKey(3)))
    assert actions.dtype == np.int32
    # a random action 20 % of the time, half of which is the non-greedy action 0: 10 %
    assert abs((actions == 0).mean() - 0.1) < 0.01
    uniform = np.asarray(db.q_act_fn("cartpole", 1.0, folder)(snaps[2], obs, jax.random.PRNGKey(4)))
    assert abs((uniform == 0).mean() - 0.5) < 0.015
    # epsilon as a parameter: the same draws as the fixed-epsilon policy
    flexible = db.q_act_fn("cartpole", None, folder)
    same = flexible((snaps[2], jnp.float32(0.2)), obs, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(np.asarray(same), actions)


def test_snapshot_rolls_out_in_the_collector(shipped):
    folder, _ = shipped
    snaps = db.load_snapshots("cartpole", folder)
    out = collect(
        "cartpole", db.greedy_act_fn("cartpole", folder), snaps[0], n=40, seed=0, num_envs=4
    )
    assert out["actions"].tolist() == [0] * 40  # always push left


def test_changed_weights_fail_the_sha256_check(shipped):
    folder, _ = shipped
    path = folder / "cartpole.msgpack"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PolicyfitError, match="does not match the index") as err:
        db.load_snapshots("cartpole", folder)
    assert err.value.field == "sha256" and err.value.path == str(path)
    assert "policyfit behavior dqn cartpole" in err.value.message


def test_missing_record_names_the_key_and_the_command(shipped):
    folder, _ = shipped
    with pytest.raises(PolicyfitError) as err:
        db.behavior_record("breakout", folder)
    assert err.value.field == "breakout"
    assert err.value.path == str(folder / "index.json")
    assert "`policyfit behavior dqn breakout`" in err.value.message
    with pytest.raises(PolicyfitError, match="unknown discrete environment"):
        db.behavior_record("pong", folder)
    with pytest.raises(PolicyfitError, match=r"\[0, 1\]"):
        db.q_act_fn("cartpole", 1.5, folder)
    assert db.behavior_index(folder / "nothing") == {}


def test_epsilon_greedy_needs_no_key_when_greedy():
    q = jnp.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    assert db.epsilon_greedy(q, 0.0, None).tolist() == [1, 0, 0]  # ties: the first action
