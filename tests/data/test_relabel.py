"""Action-free episodes, SS-ORL's split, ``strip-actions`` and ``relabel`` (Zheng et al., ICML 2023)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import policyfit
from policyfit.cli.main import cli
from policyfit.data import Dataset
from policyfit.data.action_free import ssorl_split, strip_actions
from policyfit.data.io import load_dataset, save_dataset
from policyfit.errors import ConfigError, DatasetError
from policyfit.training import relabel as relabel_module
from policyfit.training.relabel import InverseModelConfig, relabel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pendulum_data import pendulum_dataset  # noqa: E402

os.environ.setdefault("POLICYFIT_FAST_COMPILE", "1")

# A small model at a higher learning rate trains in seconds; the architecture is the official one
# otherwise (two heads, dropout 0.1 before the last layer, tanh-Gaussian NLL).
SMALL = InverseModelConfig(
    hidden_dims=(128, 128), batch_size=256, lr=1e-3, steps=400, eval_every=50
)


def episodes_with_returns(returns, lengths=None, act_dim=2):
    """A dataset whose episode i has return returns[i] (spread over its steps) and length
    lengths[i]; actions are the episode index, so they show which episode kept its actions."""
    lengths = lengths or [3] * len(returns)
    rows = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    for i, (ret, t) in enumerate(zip(returns, lengths, strict=True)):
        rows["observations"].append(np.full((t, 1), i, np.float32))
        rows["actions"].append(np.full((t, act_dim), i / 100.0, np.float32))
        rows["rewards"].append(np.full(t, ret / t, np.float64))
        rows["terminals"].append(np.zeros(t, bool))
        rows["timeouts"].append(np.arange(t) == t - 1)
    return Dataset(**{k: np.concatenate(v) for k, v in rows.items()}, source="hand")


# ----------------------------------------------------------------------------- the split
RETURNS = np.array([7.0, 3.0, 19.0, 0.0, 11.0, 5.0, 2.0, 13.0, 17.0, 1.0])
LOWEST_HALF = {3, 9, 6, 1, 5}  # returns 0, 1, 2, 3, 5: the lowest int(10 * 0.5) = 5 episodes


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_draws_the_labelled_share_of_all_episodes_from_the_low_returns(seed):
    split = ssorl_split(RETURNS, labelled=0.3, threshold=0.5, seed=seed)
    labelled = set(split.labelled.tolist())
    assert len(labelled) == 3  # int(10 * 0.3): a share of ALL trajectories, not of the low half
    assert labelled <= LOWEST_HALF
    assert set(split.in_distribution.tolist()) == LOWEST_HALF - labelled
    assert set(split.out_of_distribution.tolist()) == {0, 2, 4, 7, 8}


def test_split_caps_the_labelled_count_at_the_threshold_and_varies_with_the_seed():
    # min(int(10 * 0.8), int(10 * 0.5)) = 5: as data.setup_action_label, every low episode
    assert set(ssorl_split(RETURNS, 0.8, 0.5).labelled.tolist()) == LOWEST_HALF
    draws = {tuple(ssorl_split(RETURNS, 0.2, 0.5, seed=s).labelled) for s in range(12)}
    assert len(draws) > 3  # random within the low half, not always its lowest two
    # threshold 0.3: the lowest three (returns 0, 1, 2), whatever the seed
    assert set(ssorl_split(RETURNS, 0.3, 0.3, seed=5).labelled.tolist()) == {3, 9, 6}


def test_split_that_labels_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match=r"labelled: labels no episode: min\(int\(10 \* 0.05\)"):
        ssorl_split(RETURNS, labelled=0.05, threshold=0.5)
    with pytest.raises(ConfigError, match=r"threshold: must be a fraction in \(0, 1\]"):
        ssorl_split(RETURNS, labelled=0.1, threshold=1.5)


def test_strip_actions_keeps_exactly_the_split_and_marks_the_rest():
    # unequal lengths: the split counts episodes, the card counts their transitions
    ds = episodes_with_returns(RETURNS, lengths=[2, 3, 4, 5, 2, 3, 4, 5, 2, 3])
    free = strip_actions(ds, keep_fraction=0.2, threshold=0.5, seed=7)
    kept = ssorl_split(RETURNS, 0.2, 0.5, seed=7).labelled
    assert set(kept.tolist()) <= LOWEST_HALF and kept.size == 2
    assert sorted(free.action_free_episodes().tolist()) == sorted(set(range(10)) - set(kept))
    for i in range(10):
        ep = free.episode(i)
        if i in kept:
            np.testing.assert_array_equal(ep.actions, np.full((len(ep), 2), i / 100.0, np.float32))
        else:
            assert np.isnan(ep.actions).all()
    mask = free.metadata["extra_arrays"]["action_available"]
    np.testing.assert_array_equal(mask, ~np.isnan(free.actions[:, 0]))
    info = free.metadata["action_free"]
    lengths = [2, 3, 4, 5, 2, 3, 4, 5, 2, 3]
    assert info["labelled_transitions"] == sum(lengths[i] for i in kept)
    assert info["action_free_episodes"] == 8 and "action_free" in free.metadata["card"]


# ----------------------------------------------------------------------------- representation
def test_nan_actions_load_only_as_whole_action_free_episodes(tmp_path):
    ds = episodes_with_returns([1.0, 2.0, 3.0])
    arrays = {k: getattr(ds, k).copy() for k in ("observations", "actions", "rewards", "timeouts")}
    arrays["terminals"] = ds.terminals
    arrays["actions"][3:6] = np.nan  # the whole second episode
    with pytest.raises(DatasetError) as info:
        Dataset(**arrays, source="d.hdf5")
    assert str(info.value) == (
        "d.hdf5: actions: 1 of 3 episodes are action-free (all actions NaN, first at transition "
        "3); label them first with `policyfit data relabel d.hdf5 --out LABELLED` (an "
        "inverse-dynamics model) and train on LABELLED"
    )
    assert Dataset(**arrays, allow_action_free=True).action_free_episodes().tolist() == [1]
    arrays["actions"][6, 0] = np.nan  # one dimension of one step: damage, not missing actions
    with pytest.raises(DatasetError, match=r"actions: contains 7 NaN values \(first at transition"):
        Dataset(**arrays, allow_action_free=True)
    arrays["actions"][6, 0] = 0.0
    arrays["actions"][5] = 0.0  # an episode with some of its steps NaN
    with pytest.raises(
        DatasetError, match=r"actions: contains 4 NaN values \(first at transition 3"
    ):
        Dataset(**arrays, allow_action_free=True)


def test_training_on_action_free_data_fails_with_one_line(tmp_path):
    free = strip_actions(pendulum_dataset(episodes=6), keep_fraction=0.5, threshold=1.0)
    path = save_dataset(free, tmp_path / "free.hdf5")
    expected = (
        f"{path}: actions: 3 of 6 episodes are action-free (all actions NaN, first at transition "
    )
    with pytest.raises(DatasetError) as info:
        policyfit.train("td3bc", str(path), steps=10, out=tmp_path / "run")
    assert str(info.value).startswith(expected) and "policyfit data relabel" in str(info.value)
    assert not (tmp_path / "run").exists()
    # the same from memory (a dataset built with allow_action_free), and from the CLI
    with pytest.raises(DatasetError, match=r"actions: 3 of 6 episodes are action-free"):
        policyfit.train("bc", free, steps=10, out=tmp_path / "run2")
    result = CliRunner().invoke(cli, ["train", "iql", "--dataset", str(path), "--steps", "10"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.output


# ----------------------------------------------------------------------------- round trip
def relative_mse(pred, true):
    return float(np.mean((pred - true) ** 2) / np.var(true))


@pytest.fixture(scope="module")
def pendulum():
    return pendulum_dataset(episodes=16, seed=3)


@pytest.fixture(scope="module")
def round_trip(pendulum, tmp_path_factory):
    """strip (half of all episodes keep their actions) -> Minari -> relabel -> Minari."""
    tmp = tmp_path_factory.mktemp("relabel")
    free = strip_actions(pendulum, keep_fraction=0.5, threshold=1.0, seed=0)
    save_dataset(free, tmp / "free")
    loaded = load_dataset(tmp / "free", allow_action_free=True)
    out = relabel(loaded, seed=0, config=SMALL)
    dest = tmp / "ns" / "pendulum-relabelled-v0"
    save_dataset(out, dest, dataset_id="ns/pendulum-relabelled-v0")
    return free, out, dest


def test_strip_then_relabel_recovers_the_actions(pendulum, round_trip):
    free, out, _ = round_trip
    proxy = out.metadata["extra_arrays"]["proxy_action"]
    np.testing.assert_array_equal(proxy, np.isnan(free.actions[:, 0]))
    np.testing.assert_array_equal(out.actions[~proxy], pendulum.actions[~proxy])
    assert np.isfinite(out.actions).all() and np.abs(out.actions).max() <= 2.0
    # Pendulum's velocity update is linear in the torque, so (s_t, s_t+1) pins the action down
    # except where the speed limit clips: a quarter of the actions' variance is a loose bound
    # (predicting the mean action scores 1.0; this model about 0.07, linear regression 0.003)
    err = relative_mse(out.actions[proxy], pendulum.actions[proxy])
    assert err < 0.25, err
    record = out.metadata["relabel"]
    assert record["proxy_label_error"] == "unknown"  # the stripped file had no true actions
    assert record["split"]["labelled_episodes"] == 8
    assert record["split"]["source_split"]["keep_fraction"] == 0.5
    assert record["split"]["labelled_transitions"] == 8 * 200
    assert np.isfinite(record["idm"]["validation_nll"]) and record["idm"]["validation_held_out"]
    assert "action_available" not in out.metadata["extra_arrays"]
    assert "proxy-label error unknown" in out.metadata["card"]["relabel"]


def test_minari_reads_the_relabelled_dataset(round_trip, monkeypatch):
    import minari

    _, out, dest = round_trip
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(dest.parents[1]))
    mds = minari.load_dataset("ns/pendulum-relabelled-v0")
    assert mds.total_episodes == 16 and mds.total_steps == len(out)
    episode = next(iter(mds.iterate_episodes([3])))
    np.testing.assert_allclose(episode.actions, out.episode(3).actions)
    assert (
        episode.infos["policyfit_extra"]["proxy_action"][:200].tolist()
        == (
            out.metadata["extra_arrays"]["proxy_action"][out.episode(3).start : out.episode(3).stop]
        ).tolist()
    )


def test_relabel_of_a_labelled_dataset_splits_it_and_measures_the_error(pendulum):
    tiny = InverseModelConfig(hidden_dims=(32, 32), batch_size=128, steps=40)
    out = relabel(pendulum, labelled=0.5, threshold=0.75, seed=2, config=tiny)
    split = ssorl_split(pendulum.episode_returns(), 0.5, 0.75, seed=2)
    proxy = out.metadata["extra_arrays"]["proxy_action"]
    expected = ~np.repeat(np.isin(np.arange(16), split.labelled), 200)
    np.testing.assert_array_equal(proxy, expected)
    error = out.metadata["relabel"]["proxy_label_error"]
    diff = out.actions[proxy].astype(np.float64) - pendulum.actions[proxy]
    assert error["mse"] == pytest.approx(float(np.mean(diff**2)), rel=1e-6)
    assert error["mean_abs"] == pytest.approx(float(np.mean(np.abs(diff))), rel=1e-6)
    assert error["out_of_distribution"]["transitions"] == 4 * 200  # 16 - int(16 * 0.75)
    assert error["in_distribution"]["transitions"] == 4 * 200  # int(16 * 0.75) - 8 labelled
    assert out.metadata["relabel"]["split"]["labelled_episodes"] == 8


# ----------------------------------------------------------------------------- CLI
def run(*args):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_strip_then_relabel(tmp_path, monkeypatch):
    src = save_dataset(pendulum_dataset(episodes=6, seed=1), tmp_path / "p.npz")
    result = run(
        "data", "strip-actions", str(src), "--keep-fraction", "0.5", "--threshold", "1",
        "--out", str(tmp_path / "free.hdf5"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stripped the actions of 3 of 6 episodes (600 transitions)" in result.output
    monkeypatch.setattr(
        relabel_module,
        "InverseModelConfig",
        functools.partial(InverseModelConfig, hidden_dims=(32, 32), batch_size=128),
    )
    result = run(
        "data", "relabel", str(tmp_path / "free.hdf5"), "--steps", "30",
        "--out", str(tmp_path / "lab.npz"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "labelled 600 actions of 3 episodes from 3 labelled ones" in result.output
    assert "proxy-label error: unknown" in result.output
    assert np.isfinite(load_dataset(tmp_path / "lab.npz").actions).all()


def test_cli_errors(tmp_path):
    src = save_dataset(pendulum_dataset(episodes=4, seed=1), tmp_path / "p.npz")
    out = str(tmp_path / "o.npz")
    one_line_error(
        run("data", "strip-actions", str(src), "--keep-fraction", "1.5", "--out", out),
        "keep_fraction: must be a fraction in [0, 1], got 1.5",
    )
    one_line_error(
        run("data", "relabel", str(src), "--threshold", "0", "--out", out),
        "threshold: must be a fraction in (0, 1], got 0.0",
    )
    one_line_error(
        run("data", "relabel", str(src), "--steps", "0", "--out", out),
        "steps: must be an integer >= 1, got 0",
    )
    one_line_error(
        run("data", "relabel", str(tmp_path / "nope.hdf5"), "--out", out), "nope.hdf5", "path:"
    )
    one_line_error(  # int(4 * 0.1) = 0 episodes labelled
        run("data", "relabel", str(src), "--out", out), "labelled: labels no episode"
    )
    free = tmp_path / "free.npz"
    assert (
        run("data", "strip-actions", str(src), "--keep-fraction", "0", "--out", str(free)).exit_code
        == 0
    )
    one_line_error(
        run("data", "relabel", str(free), "--out", out),
        f"{free}: actions: every one of the 4 episodes is action-free",
    )
    one_line_error(
        run("data", "strip-actions", str(free), "--out", out),
        "actions: already has 4 action-free episodes",
    )
    half = tmp_path / "half.npz"
    run("data", "strip-actions", str(src), "--keep-fraction", "0.5", "--threshold", "1",
        "--out", str(half))  # fmt: skip
    one_line_error(
        run("data", "relabel", str(half), "--labelled", "0.5", "--out", out),
        "labelled:",
        "already has 2 action-free episodes",
    )
    discrete = save_dataset(
        Dataset(observations=np.zeros((4, 2)), actions=np.array([0, 1, 0, 1]),
                rewards=np.ones(4), terminals=np.array([0, 1, 0, 1])),
        tmp_path / "d.npz",
    )  # fmt: skip
    one_line_error(
        run("data", "strip-actions", str(discrete), "--out", out),
        "actions: actions are discrete",
    )
    assert not Path(out).exists()


def test_cli_unwritable_out_fails_before_the_work(tmp_path):
    src = str(save_dataset(pendulum_dataset(episodes=4, seed=1), tmp_path / "p.npz"))
    for command in ("strip-actions", "relabel"):
        dest = f"/proc/forbidden/{command}.hdf5"
        one_line_error(run("data", command, src, "--out", dest), f"{dest}: out: cannot write here")


def test_inspect_and_convert_keep_action_free_episodes(tmp_path):
    import json

    free = strip_actions(pendulum_dataset(episodes=4, seed=1), keep_fraction=0.5, threshold=1.0)
    path = str(save_dataset(free, tmp_path / "free.hdf5"))
    result = run("data", "inspect", path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["action_free_episodes"] == 2 and summary["action_max"] <= 2.0
    assert run("data", "convert", path, str(tmp_path / "free.npz")).exit_code == 0
    back = load_dataset(tmp_path / "free.npz", allow_action_free=True)
    assert back.fingerprint() == free.fingerprint()
    assert back.action_free_episodes().tolist() == free.action_free_episodes().tolist()
    one_line_error(  # the diagnostics need actions
        run("data", "inspect", path, "--full"), "actions: 2 of 4 episodes are action-free"
    )
