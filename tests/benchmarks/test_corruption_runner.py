"""The corruption benchmark's runner (benchmarks/corruption.py) on policyfit.sweep: overrides,
--stop-after, --jobs, failures and reruns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pendulum_data import pendulum_dataset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_set_overrides_are_parsed_and_bad_ones_refused(corruption):
    args = corruption.parse_args(["--set", "cql.bc_steps=3000", "--set", "riql.n_critics=3"])
    assert args.overrides == {"cql": {"bc_steps": "3000"}, "riql": {"n_critics": "3"}}
    with pytest.raises(SystemExit, match="ALGO.KEY=VALUE"):
        corruption.parse_args(["--set", "bc_steps=3000"])
    with pytest.raises(SystemExit):
        corruption.parse_args(["--jobs", "0"])


def test_trial_config_puts_set_on_top_of_the_papers_riql_settings(corruption, small_dataset):
    small_dataset.metadata["env_id"] = "Walker2d-v5"
    args = corruption.parse_args(["--set", "riql.n_critics=3", "--set", "cql.bc_steps=10"])
    config = corruption.trial_config(small_dataset, "riql", "random", "dynamics", args)
    # the paper's walker2d random-dynamics setting is (sigma 1.0, alpha 0.25, K 3)...
    assert config["huber_delta"] == pytest.approx(1.0) and config["value_quantile"] == 0.25
    assert config["n_critics"] == "3"  # ...and --set wins
    assert corruption.trial_config(small_dataset, "cql", "clean", "", args) == {"bc_steps": "10"}
    assert corruption.trial_config(small_dataset, "bc", "clean", "", args) is None


def _tiny_grid(tmp_path, *extra: str) -> list[str]:
    return [
        "--algos", "bc", "--targets", "rewards", "--adversarial", "--seeds", "0",
        "--steps", "20", "--eval-episodes", "1", "--save-every", "20",
        "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), *extra,
    ]  # fmt: skip


def test_no_trial_starts_after_stop_after(corruption, tmp_path):
    payload = corruption.main(
        _tiny_grid(tmp_path, "--datasets", "no-such-dataset", "--stop-after", "0")
    )
    assert [t.get("state") for t in payload["trials"]] == ["pending", "pending"]
    assert not (tmp_path / "work").exists()  # nothing loaded, corrupted or trained
    # before the deadline the trials do start (and record the bad dataset's error)
    payload = corruption.main(_tiny_grid(tmp_path, "--datasets", "no-such-dataset"))
    assert all("no-such-dataset" in t["error"] for t in payload["trials"]), payload["trials"]


def test_a_failing_trial_is_recorded_with_its_traceback(corruption, tmp_path):
    """The trials run in a worker process (policyfit.sweep's local engine); a config the
    algorithm refuses fails both trials there, and the results say why."""
    from policyfit.data.io import save_dataset

    data = tmp_path / "pendulum.npz"
    save_dataset(pendulum_dataset(episodes=2), data)
    payload = corruption.main(_tiny_grid(tmp_path, "--datasets", str(data), "--set", "bc.nope=1"))
    errors = [t.get("error", "") for t in payload["trials"]]
    assert len(errors) == 2 and all("unknown config key 'nope'" in e for e in errors), errors
    run = tmp_path / "work" / "runs" / "pendulum" / "random-rewards" / "bc-s0"
    assert "ConfigError" in (run / "error.txt").read_text()
    md = (tmp_path / "results" / "corruption.md").read_text()
    assert "2 trial(s) failed:" in md and "- pendulum clean bc s0: " in md


@pytest.mark.slow
def test_parallel_grid_end_to_end(tmp_path):
    """Two worker processes train a 2 x 2 grid; the table, the overrides and the devices land in
    the results, and the corrupted dataset both trials share is cached under its one name."""
    from policyfit.data.io import save_dataset

    data = tmp_path / "pendulum.npz"
    save_dataset(pendulum_dataset(episodes=3), data)
    cmd = [
        sys.executable, str(BENCH / "corruption.py"), "--datasets", str(data),
        "--algos", "bc", "td3bc", "--targets", "rewards", "--adversarial", "--seeds", "0",
        "--steps", "20", "--eval-episodes", "1", "--save-every", "20", "--jobs", "2",
        "--set", "td3bc.alpha=1.5", "--workdir", str(tmp_path / "work"),
        "--results-dir", str(tmp_path / "results"), "--name", "grid",
    ]  # fmt: skip
    env = {**os.environ, "POLICYFIT_FAST_COMPILE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    payload = json.loads((tmp_path / "results" / "grid.json").read_text())
    assert payload["trials_finished"] == payload["trials_total"] == 4
    assert payload["budget"]["overrides"] == {"td3bc": {"alpha": "1.5"}}
    assert {t["device"] for t in payload["trials"]} == {"cpu"}
    assert set(payload["table"]["pendulum"]) == {"clean", "random-rewards"}
    run = tmp_path / "work" / "runs" / "pendulum" / "random-rewards" / "td3bc-s0"
    assert json.loads((run / "config.json").read_text())["config"]["alpha"] == 1.5
    assert [p.name for p in (tmp_path / "work" / "data" / "pendulum").iterdir()] == [
        "random-rewards-c0.3-e1-s0.npz"
    ]
    assert (tmp_path / "results" / "grid.md").read_text().startswith("# Offline RL")

    # a rerun trains nothing: every trial is finished (summary.json with the same steps)
    mtime = (run / "summary.json").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "score" not in again.stdout and (run / "summary.json").stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "results" / "grid.json").read_text())["trials_finished"] == 4
