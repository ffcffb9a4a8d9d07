"""`policyfit train`, `policyfit eval` and `policyfit algos` through click's CliRunner."""

import json

import pytest
from click.testing import CliRunner

from pendulum_data import pendulum_dataset
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return str(
        save_dataset(pendulum_dataset(episodes=4), tmp_path_factory.mktemp("d") / "pend.npz")
    )


def test_train_then_eval(data_path, tmp_path):
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = [
        "train",
        "bc",
        "--dataset",
        data_path,
        "--steps",
        "40",
        "--set",
        "hidden_dims=16,16",
        "--set",
        "batch_size=32",
        "--eval-every",
        "0",
        "--eval-episodes",
        "2",
        "--save-every",
        "0",
        "--out",
        str(out),
        "--no-progress",
        "--json",
        "--seed",
        "0",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["algorithm"] == "bc" and summary["steps"] == 40 and summary["dataset"] == "pend"
    result = runner.invoke(cli, ["eval", str(out), "--episodes", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["env_id"] == "Pendulum-v1" and report["episodes"] == 2
    assert report["return_mean"] == pytest.approx(summary["final_return_mean"], rel=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "ppo", "--dataset", "x"],
            "unknown algorithm; valid: a2pr, awac, bc, ",
        ),
        (
            ["train", "iql", "--dataset", "x", "--set", "expectle=0.9"],
            "unknown config key 'expectle'",
        ),
        (
            ["train", "iql", "--dataset", "x", "--set", "expectile=high"],
            "cannot read 'high' as float",
        ),
        (["train", "iql", "--dataset", "x", "--set", "expectile"], "expected key=value"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_algos_lists_configs():
    result = CliRunner().invoke(cli, ["algos", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing["iql"]["config"]["expectile"] == 0.7
    assert listing["bc"]["config"]["top_fraction"] == 1.0
    # each field's source comment travels as its help: trailing, inherited, or a block above it
    help_ = listing["iql"]["help"]
    assert "Eq. 5" in help_["expectile"] and help_["discount"] == "gamma"
    assert help_["reward_normalization"].startswith('"per_step": r / mean|r|')
    assert listing["riql"]["help"]["n_critics"] == help_["n_critics"]
    table = CliRunner().invoke(cli, ["algos"], env={"COLUMNS": "200"})
    assert "inverse temperature of AWR extraction" in table.output
    assert "rvs_r (continuous actions; acts with a carry):" in table.output
    assert "discrete_bc (discrete actions):" in table.output
