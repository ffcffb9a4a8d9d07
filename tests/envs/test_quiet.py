"""MuJoCo's C warnings (gymnasium's models trip ``settotalmass``) reach no terminal and no file:
they become LibraryWarnings, printed by the CLI under ``--debug`` only."""

import os
import subprocess
import sys
import warnings

import numpy as np

from policyfit.envs.rollout import rollout_returns
from policyfit.errors import LibraryWarning


def test_rollout_routes_mujoco_warnings(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rollout_returns(lambda obs: np.zeros((len(obs), 6)), "HalfCheetah-v5", episodes=1)
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's default handler writes it
    assert any(
        issubclass(w.category, LibraryWarning) and "settotalmass" in str(w.message) for w in caught
    )


def run_cli(args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": ""}
    return subprocess.run(
        [sys.executable, "-m", "policyfit.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_shows_library_warnings_only_under_debug(tmp_path):
    args = ["data", "make", "halfcheetah-random", "--size", "1500", "--out", "d.hdf5"]
    plain = run_cli(args, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "settotalmass" not in plain.stdout + plain.stderr
    assert (tmp_path / "d.hdf5").is_file()  # --out follows its suffix (was a Minari folder)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    debug = run_cli(["--debug", *args[:-1], "d2.hdf5"], tmp_path)
    assert debug.returncode == 0, debug.stderr
    assert "warning (LibraryWarning" in debug.stderr and "settotalmass" in debug.stderr
