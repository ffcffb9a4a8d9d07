"""A tiny real sweep on the local engine (worker processes, the real trainer): failures captured,
re-runs that skip finished trials and resume an interrupted one, and the CLI without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pendulum_data import pendulum_dataset
from policyfit.data.io import save_dataset
from policyfit.sweep import read_spec, run_sweep

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = "steps: 20\neval_episodes: 1\nconfig: {bc: {hidden_dims: [8, 8], batch_size: 16}}\n"


def never_called(trial, trial_dir):  # pragma: no cover - failing here is the point
    raise AssertionError(f"finished trial {trial['trial_id']} was run again")


@pytest.mark.slow
def test_local_sweep_runs_skips_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYFIT_FAST_COMPILE", "1")
    data = save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz")
    spec_path = tmp_path / "sweep.yaml"
    missing = tmp_path / "gone.npz"
    spec_path.write_text(f"algorithms: [bc]\ndatasets: [{data}, {missing}]\nseeds: [0, 1]\n{TINY}")
    out = tmp_path / "sweep"
    logs: list[str] = []
    # one worker: the second trial reuses the first one's compiled programs (compilation cache)
    first = run_sweep(read_spec(spec_path), out, jobs=1, log=logs.append, reps=200)
    assert first["engine"] == "local"
    assert (first["ran"], first["skipped"], first["failed"]) == (4, 0, 2)
    status = {r["trial_id"]: r["status"] for r in first["rows"]}
    assert status == {
        "bc-pend-s0": "done", "bc-pend-s1": "done", "bc-gone-s0": "failed", "bc-gone-s1": "failed"
    }  # fmt: skip
    failed = next(r for r in first["rows"] if r["trial_id"] == "bc-gone-s0")
    assert "gone.npz" in failed["error"]
    assert "Traceback" in (out / "trials" / "bc-gone-s0" / "error.txt").read_text()
    for seed in (0, 1):
        trial_dir = out / "trials" / f"bc-pend-s{seed}"
        summary = json.loads((trial_dir / "summary.json").read_text())
        assert summary["seed"] == seed and summary["steps"] == 20
        assert json.loads((trial_dir / "trial.json").read_text())["variant"] == "bc"
    assert any("4 to run (local engine)" in line for line in logs)
    assert "| bc-gone-s1 | bc |" in (out / "results.md").read_text()
    assert "## Runs (2 finished, 2 failed" in (out / "results.md").read_text()

    # Finished trials are not run again: nothing reaches the trial function.
    ok_spec = tmp_path / "ok.yaml"
    ok_spec.write_text(f"algorithms: [bc]\ndatasets: [{data}]\nseeds: [0, 1]\n{TINY}")
    mtime = (out / "trials" / "bc-pend-s0" / "summary.json").stat().st_mtime_ns
    second = run_sweep(read_spec(ok_spec), out, jobs=1, trial_fn=never_called, reps=200)
    assert (second["ran"], second["skipped"], second["failed"]) == (0, 2, 0)
    assert (out / "trials" / "bc-pend-s0" / "summary.json").stat().st_mtime_ns == mtime

    # An interrupted trial (no summary.json) resumes from its last checkpoint (step 20).
    before = json.loads((out / "trials" / "bc-pend-s1" / "summary.json").read_text())
    (out / "trials" / "bc-pend-s1" / "summary.json").unlink()
    third = run_sweep(read_spec(ok_spec), out, jobs=1, reps=200)
    assert (third["ran"], third["skipped"]) == (1, 1)
    after = json.loads((out / "trials" / "bc-pend-s1" / "summary.json").read_text())
    assert after["resumed_from_step"] == 20
    assert after["final_return_mean"] == before["final_return_mean"]


@pytest.mark.slow
def test_cli_sweep_without_ray(tmp_path):
    """`policyfit sweep` with `import ray` failing in the driver and in every worker
    (a sitecustomize on PYTHONPATH): the local engine trains, a failed trial is reported."""
    data = save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz")
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"algorithms: [bc]\ndatasets: [{data}, {tmp_path / 'gone.npz'}]\n{TINY}")
    block = tmp_path / "noray"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(block), str(SRC), os.environ.get("PYTHONPATH", "")]),
        "POLICYFIT_FAST_COMPILE": "1",
    }
    check = "import sys\ntry:\n    import ray\nexcept ImportError:\n    sys.exit(0)\nsys.exit(1)"
    assert subprocess.run([sys.executable, "-c", check], env=env).returncode == 0
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "policyfit.cli", "sweep", str(spec), "--out", str(out)]
    done = subprocess.run([*cmd, "--jobs", "1"], env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 trials: 0 finished before (skipped), 2 to run (local engine)" in done.stdout
    assert "failed: bc-gone-s0: " in done.stderr and "1 of 2 trials failed" in done.stderr
    assert json.loads((out / "trials" / "bc-pend-s0" / "summary.json").read_text())["steps"] == 20

    again = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
    assert again.returncode == 1, again.stderr[-2000:]
    result = json.loads(again.stdout)
    assert (result["skipped"], result["ran"], result["failed"]) == (1, 1, 1)
    assert [r["status"] for r in result["rows"]] == ["done", "failed"]
