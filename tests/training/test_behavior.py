"""Behavior-policy training: snapshots, checkpoints, exact resume, and the D4RL snapshot recipe."""

from __future__ import annotations

import json

import flax.serialization
import jax
import numpy as np
import pytest

from policyfit.algos.sac import SACConfig
from policyfit.errors import PolicyfitError
from policyfit.training.behavior import train_behavior
from policyfit.training.behavior_export import choose_policies, read_snapshots

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


def test_export_ships_chosen_snapshots_with_measured_scores(tmp_path):
    """A synthetic Hopper run (random tiny actors, made-up training evals) exported to a folder."""
    from click.testing import CliRunner

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.sac import SAC
    from policyfit.cli.behavior import behavior
    from policyfit.training.behavior import BehaviorConfig

    sac = SACConfig(hidden_dims=(8, 8))
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    cfg = BehaviorConfig(env_id="Hopper-v5", steps=60_000, sac=sac)
    (run / "config.json").write_text(json.dumps({"behavior": cfg.to_dict()}))
    returns = [5.0, 300.0, 800.0, 1000.0, 2900.0, 3000.0]
    with open(run / "snapshots" / "index.jsonl", "w") as f:
        for i, ret in enumerate(returns):
            params = SAC(sac).init(DatasetSpec(11, 3), jax.random.PRNGKey(i)).actor_params
            name = f"step_{i * 10_000:08d}.msgpack"
            (run / "snapshots" / name).write_bytes(
                flax.serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, params))
            )
            f.write(json.dumps({"step": i * 10_000, "file": name, "return_mean": ret}) + "\n")

    dest = tmp_path / "policies"
    result = CliRunner().invoke(
        behavior, ["export", str(run), "--dest", str(dest), "--episodes", "2"]
    )
    assert result.exit_code == 0, result.output
    entry = json.loads((dest / "policies.json").read_text())["Hopper-v5"]
    expert_step = entry["policies"]["expert"]["step"]
    assert expert_step in (40_000, 50_000)  # the best re-measured of the top 3 training evals
    medium_step = entry["policies"]["medium"]["step"]
    assert 0 < medium_step < expert_step  # re-measured nearest to 1/3 of the expert's return
    assert entry["medium_replay_size"] == medium_step
    replay_steps = [s["step"] for s in entry["medium_replay"]]
    assert replay_steps == list(range(0, medium_step, 10_000))
    # the step-0 snapshot is both "random" and the first medium-replay one: stored once
    assert entry["medium_replay"][0]["file"] == entry["policies"]["random"]["file"]
    files = {p.name for p in dest.glob("*.msgpack")}
    expected = {"hopper_random.msgpack", "hopper_medium.msgpack", "hopper_expert.msgpack"}
    expected |= {f"hopper_medium_replay_{i:02d}.msgpack" for i in range(1, len(replay_steps))}
    assert files == expected
    for rec in entry["policies"].values():
        assert rec["eval_episodes"] == 2 and np.isfinite(rec["normalized_score"])


def test_replay_from_must_retrace_the_same_training(tmp_path):
    from policyfit.training.behavior import BehaviorConfig
    from policyfit.training.behavior_export import _same_trajectory_snapshots

    def fake_run(name, steps_and_bytes, seed=0):
        run = tmp_path / name
        (run / "snapshots").mkdir(parents=True)
        cfg = BehaviorConfig(env_id="Hopper-v5", seed=seed)
        (run / "config.json").write_text(json.dumps({"behavior": cfg.to_dict()}))
        with open(run / "snapshots" / "index.jsonl", "w") as f:
            for step, data in steps_and_bytes:
                (run / "snapshots" / f"s{step}.msgpack").write_bytes(data)
                f.write(
                    json.dumps({"step": step, "file": f"s{step}.msgpack", "return_mean": 0.0})
                    + "\n"
                )
        return run

    main = fake_run("main", [(0, b"a"), (10, b"b"), (20, b"c")])
    dense = fake_run("dense", [(0, b"a"), (5, b"x"), (10, b"b"), (15, b"y")])
    steps = [r["step"] for r in _same_trajectory_snapshots(main, dense, read_snapshots(main))]
    assert steps == [0, 5, 10, 15]
    other = fake_run("other", [(0, b"a"), (5, b"x"), (10, b"DIFFERENT")])
    with pytest.raises(PolicyfitError, match="not the same trajectory"):
        _same_trajectory_snapshots(main, other, read_snapshots(main))
    reseeded = fake_run("reseeded", [(10, b"b")], seed=1)
    with pytest.raises(PolicyfitError, match="not a re-run"):
        _same_trajectory_snapshots(main, reseeded, read_snapshots(main))
