"""The serve command's help and its refusals before anything starts."""

from __future__ import annotations

from click.testing import CliRunner

from policyfit.cli.main import cli


def test_serve_help_has_examples():
    out = CliRunner().invoke(cli, ["serve", "--help"])
    assert out.exit_code == 0
    assert "policyfit serve runs/crr-cartpole-s0 --explore epsilon:0.1 --log logs/" in out.output
    assert "curl -s localhost:8080/act" in out.output
    out = CliRunner().invoke(cli, ["data", "import-log", "--help"])
    assert "--format bandit" in out.output and "policyfit train iql --dataset" in out.output


def test_serve_refuses_a_bad_mode_or_path_with_one_line(discrete_policy, tmp_path):
    runner = CliRunner()
    bad_mode = runner.invoke(cli, ["serve", str(discrete_policy), "--explore", "softmax"])
    assert bad_mode.exit_code == 2
    assert "error: explore: unknown mode 'softmax'; valid: greedy, sample" in bad_mode.output
    no_policy = runner.invoke(cli, ["serve", str(tmp_path / "nothing")])
    assert no_policy.exit_code == 2 and "no policy found" in no_policy.output
