"""A tiny real sweep with --engine ray: trials as Ray tasks on a local Ray instance, the real trainer, and re-runs
that skip finished trials."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ray")

from policyfit.data import Dataset  # noqa: E402
from policyfit.data.io import save_dataset  # noqa: E402
from policyfit.sweep import read_spec, run_sweep  # noqa: E402


def tiny_pendulum_dataset(path):
    """400 random transitions shaped like Pendulum-v1 (obs 3, action 1 in [-2, 2]), 2 episodes."""
    rng = np.random.default_rng(0)
    n = 400
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    ds = Dataset(
        observations=obs,
        actions=rng.uniform(-2, 2, size=(n, 1)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=(np.arange(n) % 200) == 199,
        next_observations=np.roll(obs, -1, 0),
        metadata={
            "env_id": "Pendulum-v1",
            "ref_min_score": -1500.0,
            "ref_max_score": -150.0,
            "action_space": {"type": "box", "low": [-2.0], "high": [2.0]},
        },
    )
    return save_dataset(ds, path)


def never_called(trial, trial_dir):  # pragma: no cover - failing here is the point
    raise AssertionError(f"finished trial {trial['trial_id']} was run again")


@pytest.mark.slow
def test_tiny_sweep_on_local_ray_and_rerun_skips_finished_trials(tmp_path):
    data = tiny_pendulum_dataset(tmp_path / "pend.npz")
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(
        f"algorithms: [bc]\ndatasets: [{data}]\nseeds: [0, 1]\nsteps: 200\neval_episodes: 1\n"
    )
    out = tmp_path / "sweep"
    logs = []
    # One CPU: the trials run one after the other and the second reuses the first's compiled
    # programs (the trainer's persistent compilation cache), cheaper than two compiling at once.
    first = run_sweep(read_spec(spec_path), out, engine="ray", jobs=1, log=logs.append, reps=200)
    assert first["engine"] == "ray"
    assert (first["ran"], first["skipped"]) == (2, 0)
    assert [r["status"] for r in first["rows"]] == ["done", "done"], first["rows"]
    for seed in (0, 1):
        trial_dir = out / "trials" / f"bc-pend-s{seed}"
        summary = json.loads((trial_dir / "summary.json").read_text())
        assert summary["seed"] == seed and summary["steps"] == 200
        assert (trial_dir / "policy" / "policy.json").is_file()
        assert json.loads((trial_dir / "trial.json").read_text())["variant"] == "bc"
    assert first["score"] == "final_normalized_score"
    assert set(first["aggregates"]["bc"]) == {"mean", "median", "iqm", "optimality_gap"}
    for name in ("results.md", "results.csv", "results.json", "profiles.png"):
        assert (out / name).is_file(), name
    assert "bc-pend-s1" in (out / "results.csv").read_text()
    assert any("2 to run" in line for line in logs)

    mtime = (out / "trials" / "bc-pend-s0" / "summary.json").stat().st_mtime_ns
    second = run_sweep(read_spec(spec_path), out, engine="ray", trial_fn=never_called, reps=200)
    assert (second["ran"], second["skipped"]) == (0, 2)
    assert (out / "trials" / "bc-pend-s0" / "summary.json").stat().st_mtime_ns == mtime
    assert second["aggregates"]["bc"]["mean"] == first["aggregates"]["bc"]["mean"]
