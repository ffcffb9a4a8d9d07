"""d3rlpy's ``MDPDataset.dump`` layout: the checked-in fixtures (written by d3rlpy 2.8.1, see
``make_d3rlpy_fixture.py``), the CLI on them, policyfit's writer, inconsistent files, and a fresh
file written by d3rlpy in its own environment (skipped where that environment is absent)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.data import ARRAY_FIELDS, Dataset
from policyfit.data.io import load_dataset, save_dataset, sniff_format
from policyfit.errors import DatasetError

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
CONTINUOUS = FIXTURES / "d3rlpy_continuous.h5"
DISCRETE = FIXTURES / "d3rlpy_discrete.h5"
REPO = HERE.parents[1]


def d3rlpy_python() -> Path | None:
    """The benchmark environment's Python with d3rlpy (``make bench-venv``), or
    ``$POLICYFIT_D3RLPY_PYTHON``; None when neither exists."""
    given = os.environ.get("POLICYFIT_D3RLPY_PYTHON")
    path = Path(given) if given else REPO / "benchmarks" / ".venv-d3rlpy" / "bin" / "python"
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- the fixtures
def test_fixtures_are_sniffed_as_d3rlpy():
    assert sniff_format(CONTINUOUS) == "d3rlpy"
    assert sniff_format(DISCRETE) == "d3rlpy"


def test_continuous_fixture_exact_values():
    ds = load_dataset(CONTINUOUS)
    assert len(ds) == 12 and ds.num_episodes == 3
    assert ds.episode_lengths.tolist() == [4, 5, 3]
    assert np.flatnonzero(ds.terminals).tolist() == [3]
    assert np.flatnonzero(ds.timeouts).tolist() == [8, 11]
    assert not ds.discrete and ds.actions.dtype == np.float32
    assert ds.observations[5].tolist() == [5.0, 5.5, -5.0]
    assert ds.observations[11].tolist() == [11.0, 11.5, -11.0]
    assert ds.actions[7].tolist() == [0.0, -0.125]  # [0.25 * 2 - 0.5, 0.125 * 7 - 1]
    assert ds.actions[9].tolist() == [0.5, 0.125]
    assert ds.rewards.tolist() == [t / 2 for t in range(12)]
    # inside an episode s'_t = s_{t+1}; at an end d3rlpy has no s', the last state is repeated
    assert ds.next_observations[2].tolist() == [3.0, 3.5, -3.0]
    assert ds.next_observations[3].tolist() == [3.0, 3.5, -3.0]
    assert ds.next_observations[8].tolist() == [8.0, 8.5, -8.0]
    assert ds.metadata["derived_next_observations"] is True
    assert ds.metadata["source_format"] == "d3rlpy"
    assert ds.metadata["d3rlpy_version"] == "2.1"
    assert ds.episode_returns().tolist() == [3.0, 15.0, 15.0]  # (0+..+3)/2, (4+..+8)/2, (9+10+11)/2


def test_discrete_fixture_exact_values():
    ds = load_dataset(DISCRETE)
    assert ds.discrete and ds.actions.dtype == np.int64 and ds.actions.shape == (7,)
    assert ds.actions.tolist() == [0, 1, 2, 0, 2, 1, 1]
    assert ds.action_dim == 3
    assert ds.terminals.tolist() == [False, False, False, True, False, False, False]
    assert ds.timeouts.tolist() == [False] * 6 + [True]
    assert ds.observations[:, 1].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert ds.episode_returns().tolist() == [2.0, 3.0]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_cli_inspect_fixture():
    result = run("data", "inspect", str(CONTINUOUS), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["transitions"] == 12 and summary["episodes"] == 3
    assert summary["terminals"] == 1 and summary["timeouts"] == 2
    assert summary["observation_dim"] == 3 and summary["action_dim"] == 2
    assert summary["return_max"] == 15.0
    result = run("data", "inspect", str(DISCRETE), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["discrete"] is True


def test_cli_convert_fixture_to_every_format_and_back(tmp_path):
    original = load_dataset(CONTINUOUS)
    src = str(CONTINUOUS)
    for dst, extra in (("a.npz", []), ("b_minari", []), ("c.h5", ["--format", "d3rlpy"])):
        result = run("data", "convert", src, str(tmp_path / dst), *extra)
        assert result.exit_code == 0, result.output
        assert original.fingerprint() in result.output
        src = str(tmp_path / dst)
    assert sniff_format(tmp_path / "c.h5") == "d3rlpy"
    back = load_dataset(tmp_path / "c.h5")
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(original, name), err_msg=name)


# ----------------------------------------------------------------------------- policyfit's writer
def test_round_trip_keeps_arrays_metadata_and_extra_arrays(tmp_path, small_dataset):
    small_dataset.metadata["extra_arrays"] = {"corrupted": np.arange(len(small_dataset)) % 3 == 0}
    path = save_dataset(small_dataset, tmp_path / "d.h5", "d3rlpy")
    assert sniff_format(path) == "d3rlpy"
    loaded = load_dataset(path)
    assert loaded.fingerprint() == small_dataset.fingerprint()
    assert loaded.metadata["env_id"] == "Hopper-v5"
    assert loaded.metadata["card"] == {"behavior": "random", "note": "test"}
    np.testing.assert_array_equal(
        loaded.metadata["extra_arrays"]["corrupted"], np.arange(len(small_dataset)) % 3 == 0
    )
    with h5py.File(path) as f:
        assert int(f["num_episodes"][()]) == small_dataset.num_episodes
        assert [c.decode() for c in f["columns"][()]] == [
            "observations",
            "actions",
            "rewards",
            "terminated",
        ]
        assert f["rewards_0"].shape == (small_dataset.episode_lengths[0], 1)
        assert bool(f["terminated_0"][()]) is True  # the first episode ends in the early terminal
        assert bool(f["terminated_1"][()]) is False


def test_discrete_round_trip_stores_actions_as_one_integer_column(tmp_path):
    ds = load_dataset(DISCRETE)
    path = save_dataset(ds, tmp_path / "d.h5", "d3rlpy")
    with h5py.File(path) as f:
        assert f["actions_0"].dtype.kind == "i" and f["actions_0"].shape == (4, 1)
    assert load_dataset(path).fingerprint() == ds.fingerprint()


def test_first_generation_d3rlpy_flat_layout_keeps_its_cuts(tmp_path):
    """d3rlpy 1.x wrote flat keys with ``episode_terminals`` (terminal or cut): a cut is an
    episode end that is not a terminal, as d3rlpy's own ``load_v1`` reads it."""
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.arange(12, dtype=np.float32).reshape(6, 2)
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.ones(6, np.float32)
        f["terminals"] = np.array([0, 1, 0, 0, 0, 0], np.float32)
        f["episode_terminals"] = np.array([0, 1, 0, 1, 0, 1], np.float32)
    ds = load_dataset(path)
    assert ds.num_episodes == 3
    assert ds.timeouts.tolist() == [False, False, False, True, False, True]
    assert "extra_arrays" not in ds.metadata


# ----------------------------------------------------------------------------- inconsistent files
def _copy_fixture(tmp_path: Path, edit) -> Path:
    path = tmp_path / "edited.h5"
    path.write_bytes(CONTINUOUS.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(key, value):
    def edit(f):
        del f[key]
        f[key] = value

    return edit


def _rename(old, new):
    def edit(f):
        f.move(old, new)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda f: f.__delitem__("observations_1"),
            "edited.h5: observations_1: is missing (num_episodes is 3); the file is truncated "
            "or inconsistent",
        ),
        (
            _replace("num_episodes", 2),
            "edited.h5: num_episodes: is 2 but the file also holds observations_2; the file is "
            "inconsistent (a partial or hand-edited dump?)",
        ),
        (
            _replace("num_episodes", 0),
            "edited.h5: num_episodes: is 0: the dataset holds no episodes",
        ),
        (
            _replace("num_episodes", 2.5),
            "edited.h5: num_episodes: must be one integer, found float64 of shape ()",
        ),
        (
            _replace("actions_2", np.zeros((2, 2), np.float32)),
            "edited.h5: actions_2: has 2 rows but observations_2 has 3; every array of an episode "
            "has one row per step",
        ),
        (
            _replace("observations_1", np.zeros((5, 4), np.float32)),
            "edited.h5: observations_1: has rows of shape (4,) but episode 0 has (3,); all "
            "episodes must have the same shapes",
        ),
        (
            _replace("terminated_0", np.array([1, 0])),
            "edited.h5: terminated_0: must be one flag (True/False or 0/1), found [1, 0] of "
            "shape (2,)",
        ),
        (
            _replace("columns", [b"observations", b"actions", b"rewards"]),
            "edited.h5: columns: lacks terminated (has observations, actions, rewards); a d3rlpy "
            "dataset needs observations, actions, rewards, terminated",
        ),
        (
            _replace("version", "2.0"),
            "edited.h5: version: d3rlpy layout version '2.0' is not supported",
        ),
        (
            _rename("observations_0", "observations_0_0"),
            "edited.h5: observations_0: episode 0 stores tuple observations (observations_0_0, "
            "observations_0_1, ...); policyfit reads flat vectors only",
        ),
        (
            _replace("observations_0", np.zeros((0, 3), np.float32)),
            "edited.h5: observations_0: episode with 0 steps; d3rlpy never writes one",
        ),
        (
            _replace("rewards_1", np.array([b"a", b"b", b"c", b"d", b"e"])),
            "edited.h5: rewards_1: has dtype |S1; d3rlpy datasets hold numbers",
        ),
        (
            lambda f: f.__delitem__("columns"),
            "edited.h5: columns: d3rlpy layout without the 'columns' key",
        ),
    ],
)
def test_inconsistent_files_are_one_line_errors(tmp_path, edit, expected):
    path = _copy_fixture(tmp_path, edit)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value).startswith(f"{tmp_path}/{expected}"), str(info.value)
    result = run("data", "inspect", str(path))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {info.value}"


def test_nan_reward_in_an_episode_names_the_transition(tmp_path):
    rewards = np.arange(4, 9, dtype=np.float32)[:, None] / 2
    rewards[2] = np.nan
    path = _copy_fixture(tmp_path, _replace("rewards_1", rewards))
    with pytest.raises(
        DatasetError, match=r"rewards: contains 1 NaN values \(first at transition 6\)"
    ):
        load_dataset(path)


# ----------------------------------------------------------------------------- d3rlpy itself
_D3RLPY_SCRIPT = """
import json, sys
import numpy as np
import d3rlpy
sys.path.insert(0, sys.argv[1])
from make_d3rlpy_fixture import write
inputs, out, ours = sys.argv[2], sys.argv[3], sys.argv[4]
with np.load(inputs) as z:
    for kind in ("continuous", "discrete"):
        write(f"{out}/{kind}.h5", {k: z[f"{kind}.{k}"] for k in
              ("observations", "actions", "rewards", "terminals", "timeouts")})
with open(ours, "rb") as f:
    buffer = d3rlpy.dataset.ReplayBuffer.load(f, d3rlpy.dataset.InfiniteBuffer())
arrays = {}
for i, ep in enumerate(buffer.episodes):
    arrays[f"observations_{i}"] = ep.observations
    arrays[f"actions_{i}"] = ep.actions
    arrays[f"rewards_{i}"] = ep.rewards
    arrays[f"terminated_{i}"] = np.array(ep.terminated)
np.savez(f"{out}/read_by_d3rlpy.npz", **arrays)
print(json.dumps({"version": d3rlpy.__version__, "episodes": len(buffer.episodes)}))
"""


def _random_episodes(rng: np.random.Generator, n_episodes: int, discrete: bool):
    lengths = rng.integers(2, 30, size=n_episodes)  # d3rlpy drops cut episodes of one step
    n = int(lengths.sum())
    ends = np.cumsum(lengths) - 1
    terminated = rng.random(n_episodes) < 0.5
    terminals = np.zeros(n, np.float32)
    timeouts = np.zeros(n, np.float32)
    terminals[ends[terminated]] = 1.0
    timeouts[ends[~terminated]] = 1.0
    actions = (
        rng.integers(0, 5, size=n).astype(np.int64)
        if discrete
        else rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    )
    return {
        "observations": rng.normal(size=(n, 4)).astype(np.float32),
        "actions": actions,
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


@pytest.mark.slow
def test_files_written_by_d3rlpy_and_read_by_d3rlpy(tmp_path):
    python = d3rlpy_python()
    if python is None:
        pytest.skip("no d3rlpy environment (make bench-venv, or set POLICYFIT_D3RLPY_PYTHON)")
    rng = np.random.default_rng(7)
    inputs = {
        "continuous": _random_episodes(rng, 12, discrete=False),
        "discrete": _random_episodes(rng, 9, discrete=True),
    }
    np.savez(
        tmp_path / "inputs.npz",
        **{f"{kind}.{k}": v for kind, arrays in inputs.items() for k, v in arrays.items()},
    )
    ours = Dataset(**_random_episodes(rng, 5, discrete=False))
    save_dataset(ours, tmp_path / "ours.h5", "d3rlpy")
    proc = subprocess.run(
        [str(python), "-c", _D3RLPY_SCRIPT, str(HERE), str(tmp_path / "inputs.npz"),
         str(tmp_path), str(tmp_path / "ours.h5")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["version"].startswith("2.")

    # d3rlpy -> policyfit: every array as given to d3rlpy's MDPDataset
    for kind, arrays in inputs.items():
        ds = load_dataset(tmp_path / f"{kind}.h5")
        np.testing.assert_array_equal(ds.observations, arrays["observations"])
        np.testing.assert_array_equal(ds.actions, arrays["actions"])
        assert ds.discrete == (kind == "discrete")
        np.testing.assert_array_equal(ds.rewards, arrays["rewards"])
        np.testing.assert_array_equal(ds.terminals, arrays["terminals"] == 1)
        np.testing.assert_array_equal(ds.timeouts, arrays["timeouts"] == 1)
        inside = ~(ds.terminals | ds.timeouts)
        np.testing.assert_array_equal(
            ds.next_observations[inside], arrays["observations"][1:][inside[:-1]]
        )

    # policyfit -> d3rlpy: d3rlpy's own loader sees our episodes
    assert info["episodes"] == ours.num_episodes
    with np.load(tmp_path / "read_by_d3rlpy.npz") as z:
        for ep in ours.episodes():
            i = ep.index
            np.testing.assert_array_equal(z[f"observations_{i}"], ep.observations)
            np.testing.assert_array_equal(z[f"actions_{i}"], ep.actions)
            np.testing.assert_array_equal(z[f"rewards_{i}"][:, 0], ep.rewards)
            assert bool(z[f"terminated_{i}"]) == bool(ep.terminals[-1])
