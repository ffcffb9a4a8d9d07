"""A bad option value that only the library can judge: exit code 2, one line on stderr, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.data.io import save_dataset


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--target", "observations", "--seed", "-1"],
            "error: seed: must be an integer >= 0, got -1",
        ),
        (
            ["--target", "actions", "--mode", "adversarial", "--critic-steps", "0"],
            "error: critic_config.steps: must be an integer >= 1, got 0",
        ),
    ],
)
def test_bad_corrupt_option_is_one_line(tmp_path, small_dataset, args, line):
    src = save_dataset(small_dataset, tmp_path / "src.npz")
    out = tmp_path / "bad.npz"
    result = CliRunner().invoke(cli, ["data", "corrupt", str(src), *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [line], result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_bad_option_in_a_real_process(tmp_path, small_dataset):
    src = save_dataset(small_dataset, tmp_path / "src.npz")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "policyfit.cli", "data", "corrupt", str(src),
         "--target", "rewards", "--seed", "-5", "--out", str(tmp_path / "bad.npz")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["error: seed: must be an integer >= 0, got -5"]
    assert proc.stdout == ""
