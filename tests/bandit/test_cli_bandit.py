"""``policyfit bandit ope`` and ``make-synthetic``: on files, JSON equal to the Python API, one-line
errors with exit code 2 for bad files and options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.bandit import BanditFeedback, evaluate, load_feedback, save_feedback
from policyfit.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, ["bandit", *args])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("bandit_cli")
    logs, pi = d / "logs.npz", d / "pi.npy"
    result = run(
        "make-synthetic", "--n", "400", "--n-actions", "4", "--dim-context", "2",
        "--seed", "3", "--out", str(logs), "--policy-out", str(pi), "--epsilon", "0.2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return d, logs, pi, json.loads(result.output)


def test_make_synthetic_writes_logs_policy_and_the_true_value(synthetic):
    _, logs, pi, summary = synthetic
    fb = load_feedback(logs)
    action_dist = np.load(pi)
    assert fb.n_rounds == 400 and fb.n_actions == 4 and action_dist.shape == (400, 4, 1)
    # epsilon-greedy on the true q: 0.8 + 0.2 / 4 on the best action
    assert np.allclose(action_dist.max(axis=1), 0.85)
    truth = np.mean(np.sum(fb.expected_reward * action_dist[:, :, 0], axis=1))
    assert summary["policy_value"] == pytest.approx(truth)
    assert summary["n_rounds"] == 400 and summary["out"] == str(logs)


def test_ope_json_is_the_api_result_with_intervals(synthetic):
    d, logs, pi, summary = synthetic
    q_hat = np.load(pi) * 0 + 0.5
    np.save(d / "q.npy", q_hat)
    result = run(
        "ope", str(logs), "--action-dist", str(pi), "--reward-model", str(d / "q.npy"),
        "--estimators", "ipw,dm,dr-os", "--lambda", "dr-os=10", "--bootstrap", "200",
        "--seed", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = evaluate(
        logs, np.load(pi), ["ipw", "dm", "dr-os"], q_hat,
        n_bootstrap_samples=200, random_state=1, lambda_={"dr-os": 10.0},
    )  # fmt: skip
    assert list(printed) == list(expected)
    for name, entry in expected.items():
        assert printed[name] == pytest.approx(entry, rel=1e-12), name
    assert printed["dm"]["estimate"] == pytest.approx(0.5)
    assert set(printed["ipw"]) == {"estimate", "mean", "95.0% CI (lower)", "95.0% CI (upper)"}


def test_ope_table_fits_a_reward_model_by_default(synthetic):
    _, logs, pi, _ = synthetic
    result = run("ope", str(logs), "--action-dist", str(pi), "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "reward model: auto, 2-fold cross-fitted" in lines[0]
    assert [ln.split()[0] for ln in lines[2:-1]] == [
        "ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "dr-os", "sg-ipw", "sg-dr",
    ]  # fmt: skip
    assert lines[-1].startswith("ground truth (the logs' expected_reward): ")
    free = run(
        "ope",
        str(logs),
        "--action-dist",
        str(pi),
        "--fit-reward-model",
        "none",
        "--bootstrap",
        "50",
    )
    assert [ln.split()[0] for ln in free.output.splitlines()[2:-1]] == ["ipw", "snipw", "sg-ipw"]


def test_ope_on_a_hand_made_file(tmp_path):
    """Four rounds written by hand; IPW of 'always action 0' = (1/0.5 + 0 + 0 + 1/0.5) / 4."""
    fb = BanditFeedback(
        context=np.zeros((4, 1)),
        action=[0, 1, 1, 0],
        reward=[1.0, 1.0, 0.0, 1.0],
        pscore=[0.5, 0.5, 0.5, 0.5],
        n_actions=2,
    )
    logs = save_feedback(fb, tmp_path / "logs.npz")
    np.save(tmp_path / "pi.npy", np.tile([[1.0, 0.0]], (4, 1)))  # [n, K] works too
    result = run(
        "ope", str(logs), "--action-dist", str(tmp_path / "pi.npy"), "--estimators", "ipw",
        "--json", "--bootstrap", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ipw"]["estimate"] == pytest.approx(1.0)


def bad_files(tmp_path, logs):
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "wrong.npy", np.full((3, 4, 1), 0.25))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(logs.read_bytes()[:300])


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["ope", "{d}/none.npz", "--action-dist", "{pi}"], "error: {d}/none.npz: path: no such file"),
        (["ope", "{d}/cut.npz", "--action-dist", "{pi}"], "error: {d}/cut.npz: file: cannot be read as .npz"),
        (["ope", "{logs}", "--action-dist", "{d}/none.npy"], "error: {d}/none.npy: action_dist: no such file"),
        (["ope", "{logs}", "--action-dist", "{d}/junk.npy"], "error: {d}/junk.npy: action_dist: cannot be read as .npy"),
        (["ope", "{logs}", "--action-dist", "{d}/objects.npy"], "error: {d}/objects.npy: action_dist: holds Python objects"),
        (
            ["ope", "{logs}", "--action-dist", "{d}/wrong.npy"],
            "error: {d}/wrong.npy: action_dist: has shape (3, 4, 1); expected [n_rounds, n_actions, len_list] = [400, 4, L]",
        ),
        (
            ["ope", "{logs}", "--action-dist", "{pi}", "--reward-model", "{d}/wrong.npy"],
            "error: {d}/wrong.npy: estimated_rewards_by_reg_model: has shape (3, 4, 1) but action_dist has (400, 4, 1)",
        ),
        (["ope", "{logs}", "--action-dist", "{pi}", "--estimators", "ipw,magic"], "error: ope: estimators: unknown estimator 'magic'"),
        (["ope", "{logs}", "--action-dist", "{pi}", "--lambda", "sg-dr=3"], "error: ope: lambda_: sg-dr: lambda_ must lie in [0, 1], got 3.0"),
        (["ope", "{logs}", "--action-dist", "{pi}", "--folds", "0"], "error: reward_model: n_folds: must be an integer >= 1, got 0"),
        (["ope", "{logs}", "--action-dist", "{pi}", "--alpha", "2"], "error: ope: alpha: must be a float in (0, 1), got 2.0"),
        (["make-synthetic", "--n", "10", "--n-actions", "1", "--out", "{d}/x.npz"], "error: SyntheticBanditDataset: n_actions: must be an integer >= 2"),
        (["make-synthetic", "--n", "10", "--n-actions", "3", "--out", "/proc/forbidden/x.npz"], "error: /proc/forbidden/x.npz: out: cannot write"),
    ],
)  # fmt: skip
def test_bad_files_and_options_are_one_line_and_exit_2(synthetic, tmp_path, args, line):
    d, logs, pi, _ = synthetic
    bad_files(tmp_path, logs)
    fill = {"d": str(tmp_path), "logs": str(logs), "pi": str(pi)}
    result = run(*[a.format(**fill) for a in args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(line.format(**fill)), result.output


def test_help_has_examples():
    for command in ("ope", "make-synthetic"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output
        assert f"policyfit bandit {command}" in result.output
