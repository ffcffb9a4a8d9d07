"""Behavior-policy training: snapshots, checkpoints, exact resume, and the D4RL snapshot recipe."""

from __future__ import annotations

import json

import flax.serialization
import jax
import numpy as np
import pytest

from policyfit.algos.sac import SACConfig
from policyfit.envs.behavior import choose_policies, read_snapshots, train_behavior
from policyfit.errors import PolicyfitError

TINY = dict(
    start_steps=100,
    chunk=50,
    eval_every=200,
    eval_episodes=2,
    checkpoint_every=200,
    buffer_capacity=1000,
    sac=SACConfig(hidden_dims=(16, 16), batch_size=16),
)


def _actor_leaves(run_dir):
    ckpt = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    state = flax.serialization.msgpack_restore((ckpt / "state.msgpack").read_bytes())
    return jax.tree_util.tree_leaves(state["actor_params"])


def test_training_writes_snapshots_and_resume_continues_exactly(tmp_path):
    # Pendulum episodes last 200 steps, so checkpoints fall on episode ends: resume is bit-exact.
    straight = tmp_path / "straight"
    summary = train_behavior("Pendulum-v1", steps=600, out=straight, progress=False, **TINY)
    assert summary["steps"] == 600
    snaps = read_snapshots(straight)
    assert [s["step"] for s in snaps] == [0, 200, 400, 600]
    assert all((straight / "snapshots" / s["file"]).exists() for s in snaps)

    split = tmp_path / "split"
    train_behavior("Pendulum-v1", steps=400, out=split, progress=False, **TINY)
    with pytest.raises(PolicyfitError, match="--resume"):
        train_behavior("Pendulum-v1", steps=600, out=split, progress=False, **TINY)
    train_behavior("Pendulum-v1", steps=600, out=split, resume=True, progress=False)
    for a, b in zip(_actor_leaves(straight), _actor_leaves(split), strict=True):
        np.testing.assert_array_equal(a, b)
    config = json.loads((split / "config.json").read_text())
    assert config["behavior"]["steps"] == 600 and config["algorithm"] == "sac"


def test_choose_policies_follows_d4rl_recipe():
    returns = [10, 200, 600, 900, 1200, 2400, 3000, 2800]
    snaps = [{"step": 10_000 * i, "return_mean": r} for i, r in enumerate(returns)]
    picks = choose_policies(snaps, n_replay=3)
    assert picks["expert"]["step"] == 60_000  # best evaluation
    assert picks["random"]["step"] == 0
    # one third of the way from the random return to the expert's: 10 + 2990/3 = 1007
    assert picks["medium"]["step"] == 30_000
    assert [s["step"] for s in picks["medium_replay"]] == [0, 10_000, 20_000]
