"""`policyfit eval` reports a bootstrap confidence interval next to mean and std."""

import json

import numpy as np
from click.testing import CliRunner

from pendulum_data import pendulum_dataset
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset


def test_eval_reports_bootstrap_interval(tmp_path):
    data = str(save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz"))
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = ["train", "bc", "--dataset", data, "--steps", "20", "--set", "hidden_dims=8,8"]
    args += ["--set", "batch_size=16", "--eval-every", "0", "--eval-episodes", "1"]
    args += ["--save-every", "0", "--out", str(out), "--no-progress"]
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, ["eval", str(out), "--episodes", "6", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    returns = np.asarray(report["returns"])
    assert report["confidence"] == 0.95
    # a percentile bootstrap interval of the mean lies inside the sample range and around the mean
    assert returns.min() <= report["return_ci_low"] <= report["return_mean"]
    assert report["return_mean"] <= report["return_ci_high"] <= returns.max()
    assert report["return_ci_high"] > report["return_ci_low"]
    text = runner.invoke(cli, ["eval", str(out), "--episodes", "3"])
    assert text.exit_code == 0 and "95% CI" in text.output
