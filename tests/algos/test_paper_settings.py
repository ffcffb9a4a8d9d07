"""Per-environment paper settings: ``policyfit.algos.registry.paper_settings`` and
``policyfit train --paper-settings``."""

from __future__ import annotations

from click.testing import CliRunner

from policyfit.algos.registry import paper_settings
from policyfit.cli.main import cli
from policyfit.cli.train import _with_paper_settings


def test_family_matched_as_a_word_of_the_dataset_name_or_path():
    assert paper_settings("prdc", "halfcheetah-medium") == {"alpha": 40.0, "beta": 2.0, "k": 1}
    assert paper_settings("PRDC", "mujoco/hopper/medium-v0")["alpha"] == 2.5
    assert paper_settings("prdc", "/data/walker2d-medium-replay.hdf5")["alpha"] == 2.5
    # antmaze's reward scaling is not a config field: left out
    assert paper_settings("prdc", "antmaze-umaze") == {"alpha": 7.5, "beta": 7.5, "k": 1}
    # no table, or no family in the name
    assert paper_settings("iql", "hopper-medium") == {}
    assert paper_settings("prdc", "pendulum") == {}
    assert paper_settings("prdc", "cheetah-run") == {}  # a word, not a substring


def test_explicit_set_wins_over_the_paper_settings(capsys):
    config = _with_paper_settings("prdc", "halfcheetah-medium", {"alpha": "10"})
    assert config == {"alpha": "10", "beta": "2.0", "k": "1"}
    assert "paper settings for halfcheetah-medium: beta=2.0, k=1" in capsys.readouterr().err


def test_cli_needs_an_algorithm_and_a_dataset():
    result = CliRunner().invoke(cli, ["train", "prdc", "--paper-settings"])
    assert result.exit_code == 2
    assert "--paper-settings: needs ALGO and --dataset" in result.output
