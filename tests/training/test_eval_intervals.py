"""`policyfit eval` reports a bootstrap confidence interval next to mean and std."""

import json

import numpy as np
from click.testing import CliRunner

from pendulum_data import pendulum_dataset
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset
from policyfit.diagnostics.render import fmt


def tiny_bc_run(tmp_path):
    """A 20-step BC run on two Pendulum episodes: (runner, dataset path, run directory)."""
    data = str(save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz"))
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = ["train", "bc", "--dataset", data, "--steps", "20", "--set", "hidden_dims=8,8"]
    args += ["--set", "batch_size=16", "--eval-every", "0", "--eval-episodes", "1"]
    args += ["--save-every", "0", "--out", str(out), "--no-progress"]
    assert runner.invoke(cli, args).exit_code == 0
    return runner, data, out


def test_eval_reports_bootstrap_interval(tmp_path):
    runner, data, out = tiny_bc_run(tmp_path)
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


def test_ope_is_stored_with_the_run_and_shown_in_its_report(tmp_path):
    runner, data, out = tiny_bc_run(tmp_path)
    ope = ["ope", str(out), "--dataset", data, "--iterations", "100", "--bootstrap", "2"]
    result = runner.invoke(cli, [*ope, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    stored = json.loads((out / "ope.json").read_text())["estimates"]
    assert len(stored) == 1 and stored[0]["dataset"] == data
    assert stored[0]["value"] == printed["value"]
    # a second estimate on the same data replaces the first instead of piling up
    assert runner.invoke(cli, ope).exit_code == 0
    assert len(json.loads((out / "ope.json").read_text())["estimates"]) == 1
    html = tmp_path / "r.html"
    assert runner.invoke(cli, ["report", str(out), "--out", str(html)]).exit_code == 0
    text = html.read_text()
    assert "Off-policy estimate (FQE" in text
    low, high = (fmt(x) for x in stored[0]["return_ci"])
    assert f"{fmt(stored[0]['return_estimate'])} [{low}, {high}]</td>" in text
