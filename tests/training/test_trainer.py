"""The trainer: run directory contents, exact resume, policy round trip, clear errors."""

import json
import shutil

import jax
import numpy as np
import pytest

import policyfit
from pendulum_data import pendulum_dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.checkpoint import list_checkpoints
from policyfit.training.trainer import train

TINY = {"hidden_dims": (32, 32), "batch_size": 64}
KW = dict(
    steps=60,
    seed=3,
    config=TINY,
    eval_every=30,
    save_every=20,
    eval_episodes=2,
    progress=False,
    fuse=10,
    fast_compile=True,
)


@pytest.fixture(scope="module")
def dataset():
    return pendulum_dataset(episodes=6)


def test_one_run_end_to_end(dataset, tmp_path):
    """One training run (kept in a single test so parallel workers do not train it twice)."""
    full_run = train("td3bc", dataset, out=tmp_path / "full", tensorboard=True, **KW)
    check_run_directory_contents(full_run, dataset)
    check_tensorboard_matches_metrics(full_run.run_dir)
    check_resume_is_exact(full_run, dataset, tmp_path)
    check_load_policy_round_trip(full_run, dataset)
    check_new_run_never_overwrites(full_run, dataset)


def leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


def check_run_directory_contents(full_run, dataset):
    run = full_run.run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm"] == "td3bc"
    assert config["config"]["alpha"] == 2.5 and config["config"]["hidden_dims"] == [32, 32]
    assert config["dataset"]["fingerprint"] == dataset.fingerprint()
    assert config["versions"]["jax"] == jax.__version__
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "algorithm",
        "dataset",
        "seed",
        "steps",
        "wall_seconds",
        "steps_per_second",
        "final_normalized_score",
        "best_normalized_score",
        "final_return_mean",
    ):
        assert key in summary
    assert (
        summary["steps"] == 60 and summary["seed"] == 3 and summary["dataset"] == "pendulum-mixed"
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/return_mean" in r]
    assert [r["step"] for r in evals] == [30, 60]
    # each evaluation records the wall time the user had waited (time-to-score benchmarks)
    assert 0 < evals[0]["wall_seconds"] < evals[1]["wall_seconds"] <= summary["wall_seconds"]
    assert [r["step"] for r in rows if "train/critic_loss" in r] == list(range(10, 61, 10))
    assert [s for s, _ in list_checkpoints(run)] == [40, 60]  # keeps the last two
    assert not list(run.rglob("*.pkl")) and not list(run.rglob("*.pickle"))


def check_resume_is_exact(full_run, dataset, tmp_path):
    # Simulate a run killed after its step-40 checkpoint: drop everything written later.
    run = tmp_path / "killed"
    shutil.copytree(full_run.run_dir, run)
    shutil.rmtree(run / "checkpoints" / "step_60")
    (run / "summary.json").unlink()
    # No schedule arguments: the run's own steps, evaluation cadence and episodes (2, where a
    # fresh call's default is 10), and its own evaluation seeds.
    resumed = train(None, dataset, resume=run, progress=False)
    assert resumed.summary["resumed_from_step"] == 40
    assert resumed.summary["steps"] == 60 and resumed.summary["eval_episodes"] == 2
    for a, b in zip(leaves(full_run.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-exact
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/return_mean" in r] == [30, 60]
    # same parameters, same evaluation seeds: the same final evaluation, to the last bit
    for key in ("final_return_mean", "final_return_std", "best_return_mean"):
        assert resumed.summary[key] == full_run.summary[key], key
    # TensorBoard drops what the killed process wrote after step 40 (SessionLog.START)
    check_tensorboard_matches_metrics(run)


def check_tensorboard_matches_metrics(run):
    """Every numeric metric of metrics.jsonl is a TensorBoard scalar, once per step, read back
    with TensorBoard's own event reader."""
    from policyfit.training.tensorboard import read_scalars

    scalars = read_scalars(run / "tensorboard")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float):
                expected.setdefault(key, []).append((row["step"], float(value)))
    assert {"train/critic_loss", "eval/return_mean", "steps_per_second"} <= set(scalars)
    assert set(scalars) == set(expected)
    for tag, points in expected.items():
        got = scalars[tag]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        np.testing.assert_allclose([v for _, v in got], [v for _, v in points], rtol=1e-6)


def check_load_policy_round_trip(full_run, dataset):
    policy = policyfit.load_policy(full_run.run_dir)
    obs = dataset.observations[:7]
    batched = policy(obs)
    assert batched.shape == (7, 1) and batched.dtype == np.float32
    np.testing.assert_allclose(policy(obs[0]), batched[0], rtol=1e-6)
    np.testing.assert_allclose(batched, full_run.policy(obs), rtol=1e-6)
    assert np.all(np.abs(batched) <= 2.0 + 1e-6)  # Pendulum's action box
    with pytest.raises(PolicyfitError, match="expects 3"):
        policy(np.zeros(5))


def check_new_run_never_overwrites(full_run, dataset):
    with pytest.raises(PolicyfitError, match="already holds a run"):
        train("td3bc", dataset, out=full_run.run_dir, **KW)


def test_bad_config_rejected_before_training(dataset, tmp_path):
    with pytest.raises(ConfigError, match="valid keys"):
        train(
            "iql", dataset, steps=10, config={"expectil": 0.8}, out=tmp_path / "a", progress=False
        )
    with pytest.raises(ConfigError, match="cannot read"):
        train(
            "iql", dataset, steps=10, config={"expectile": "x"}, out=tmp_path / "b", progress=False
        )
    with pytest.raises(ConfigError, match="unknown algorithm"):
        train("ppo", dataset, steps=10, out=tmp_path / "c", progress=False)
