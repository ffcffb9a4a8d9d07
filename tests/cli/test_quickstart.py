"""`policyfit quickstart` end to end on a tiny budget, twice in a row (the second run starts afresh)."""

from click.testing import CliRunner

from policyfit.cli.main import cli


def test_quickstart_runs_and_reruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["quickstart", "--algo", "bc", "--size", "2000", "--steps", "40"]
    args += ["--eval-episodes", "1"]
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1", "COLUMNS": "120"})
    for _ in range(2):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "learned bc policy" in result.output and "data (behavior episodes)" in result.output
    assert (tmp_path / "runs" / "quickstart-bc-halfcheetah-medium-s0" / "summary.json").is_file()
