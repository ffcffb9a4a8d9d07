"""``policyfit pref``: tasks, data make (atomic, a datasets dataset), train --json, errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from policyfit.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_tasks_lists_the_four():
    result = run("pref", "tasks", "--json")
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.output)
    assert list(tasks) == [
        "token-bandit-aligned",
        "token-bandit-unaligned",
        "enumerable",
        "unseen-response",
    ]
    assert tasks["enumerable"]["exact"] is True and tasks["token-bandit-aligned"]["exact"] is False


def test_data_make_writes_a_datasets_dataset(tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "prefs"
    result = run("pref", "data", "make", "unseen-response", "--n", "5", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = load_from_disk(str(out))
    assert data.column_names == ["prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"]
    assert data[0] == {
        "prompt": "<bos>",
        "chosen": " y1",
        "rejected": " y2",
        "chosen_reward": 1.0,
        "rejected_reward": 0.0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["prefs"]  # no temporary left behind
    again = run("pref", "data", "make", "unseen-response", "--n", "5", "--out", str(out))
    assert again.exit_code == 2
    assert again.output.strip().endswith(
        "out: already exists; choose another --out or pass --force"
    )


def test_train_json_prints_exact_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("pref", "train", "ipo", "--task", "unseen-response", "--steps", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    for key in ("expected_reward", "kl_policy_ref", "tv_to_optimum", "kl_policy_optimum"):
        assert isinstance(out[key], float)
    assert out["objective"] == "ipo" and out["steps"] == 3 and out["exact"] is True
    assert 0.0 <= out["mass_on_unseen"] <= 1.0


def test_bad_input_is_one_line_exit_2():
    result = run("pref", "train", "ppo", "--task", "enumerable")
    assert result.exit_code == 2
    assert result.output == (
        "error: OBJECTIVE: objective: unknown objective 'ppo'; choose one of dpo, ipo, rpo, "
        "online-dpo, copg, c-rlft, superhf, hypo, nash-md, drpo-rollin, dpo-ours\n"
    )
    result = run("pref", "data", "make", "chess", "--out", "x")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "unknown task 'chess'" in result.output


def test_a_missing_extra_says_make_install_pref(monkeypatch):
    import importlib.util

    from policyfit.cli import pref as pref_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        pref_cli.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "trl" else real(name, *a),
    )
    result = run("pref", "tasks")
    assert result.exit_code == 2
    assert result.output == (
        "error: trl: pref: the preference extra is not installed; run `make install-pref` "
        "(pip install -e .[pref])\n"
    )


def test_objectives_lists_every_trainer():
    from policyfit.cli.pref import OBJECTIVE_NAMES
    from policyfit.pref.train import OBJECTIVES

    result = run("pref", "objectives", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert tuple(listed) == OBJECTIVE_NAMES == tuple(OBJECTIVES)
    assert listed["dpo"]["trainer"] == "trl-dpo" and listed["rpo"]["trainer"] == "trl-dpo"
    assert listed["online-dpo"]["trainer"] == "trl-online-dpo"
    assert listed["hypo"]["trainer"] == "HyPOTrainer"


def test_a_bad_option_is_one_line():
    result = run("pref", "train", "hypo", "--task", "enumerable", "--option", "lamda=0.2")
    assert result.exit_code == 2
    assert result.output == "error: --option: lamda: hypo has no setting 'lamda'\n"
    result = run("pref", "train", "hypo", "--task", "enumerable", "--option", "lam")
    assert result.output == "error: --option: option: expected KEY=VALUE, got 'lam'\n"
