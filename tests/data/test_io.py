"""Round trips between Minari, HDF5 and npz; reading real Minari data; atomic writes."""

from __future__ import annotations

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest

from policyfit.data import ARRAY_FIELDS, Dataset
from policyfit.data.io import load_dataset, save_dataset, sniff_format


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("chain", [["x.hdf5", "y.npz", "z_minari"], ["z_minari", "x.npz", "y.h5"]])
def test_round_trips_keep_arrays_fingerprint_and_metadata(tmp_path, small_dataset, chain):
    small_dataset.metadata["extra_arrays"] = {"corrupted": np.arange(len(small_dataset)) % 3 == 0}
    current = small_dataset
    for name in chain:
        path = save_dataset(current, tmp_path / name)
        loaded = load_dataset(path)
        assert_same(small_dataset, loaded)
        assert loaded.metadata["env_id"] == "Hopper-v5"
        assert loaded.metadata["card"] == {"behavior": "random", "note": "test"}
        assert loaded.metadata["ref_max_score"] == pytest.approx(3234.3)
        np.testing.assert_array_equal(
            loaded.metadata["extra_arrays"]["corrupted"],
            small_dataset.metadata["extra_arrays"]["corrupted"],
        )
        current = loaded


def test_minari_keeps_next_observations_that_break_the_chain(tmp_path, small_dataset):
    arrays = {name: getattr(small_dataset, name).copy() for name in ARRAY_FIELDS}
    arrays["next_observations"][10] += 5.0  # e.g. corrupted dynamics: s'_10 != s_11
    ds = Dataset(**arrays, metadata=dict(small_dataset.metadata))
    loaded = load_dataset(save_dataset(ds, tmp_path / "m"))
    assert_same(ds, loaded)


def test_written_minari_is_read_by_minari_itself(tmp_path, small_dataset):
    path = save_dataset(small_dataset, tmp_path / "m", dataset_id="policyfit/test-small-v0")
    mds = minari.MinariDataset(path / "data")
    assert mds.total_steps == len(small_dataset)
    assert mds.total_episodes == small_dataset.num_episodes
    ep = mds[0]
    np.testing.assert_array_equal(ep.actions, small_dataset.episode(0).actions)
    assert mds.spec.env_spec.id == "Hopper-v5"


def test_reads_minari_dataset_collected_from_real_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=40))
    env.reset(seed=0)
    for _ in range(3):
        env.reset()
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
    env.create_dataset(dataset_id="test/pendulum-random-v0", algorithm_name="random")
    ds = load_dataset("test/pendulum-random-v0")  # by id from the local Minari root
    assert len(ds) == 120 and ds.num_episodes == 3
    assert ds.observation_dim == 3 and ds.action_dim == 1
    assert ds.timeouts.sum() == 3 and not ds.terminals.any()
    assert ds.metadata["env_id"] == "Pendulum-v1"
    mds = minari.load_dataset("test/pendulum-random-v0")
    np.testing.assert_allclose(ds.observations[:40], mds[0].observations[:-1])
    np.testing.assert_allclose(ds.next_observations[:40], mds[0].observations[1:])
    np.testing.assert_allclose(ds.rewards[40:80], mds[1].rewards)
    by_dir = load_dataset(tmp_path / "root" / "test" / "pendulum-random-v0")
    assert by_dir.fingerprint() == ds.fingerprint()


def test_hdf5_without_next_observations_derives_them_inside_episodes(tmp_path):
    path = tmp_path / "d4rl.hdf5"
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.ones(6, np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1], bool)
        f["infos/qpos"] = np.zeros((6, 3))
        f["metadata/algorithm"] = b"SAC"
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.next_observations[:2], obs[1:3])
    np.testing.assert_array_equal(ds.next_observations[3:5], obs[4:6])
    assert ds.metadata["extra_arrays"]["infos/qpos"].shape == (6, 3)
    assert ds.metadata["extra"]["metadata/algorithm"] == "SAC"


def test_sniffing_ignores_extension(tmp_path, small_dataset):
    path = save_dataset(small_dataset, tmp_path / "data.npz")
    disguised = tmp_path / "data.hdf5"
    path.rename(disguised)
    assert sniff_format(disguised) == "npz"
    assert load_dataset(disguised).fingerprint() == small_dataset.fingerprint()


def test_failed_write_leaves_no_partial_file(tmp_path, small_dataset, monkeypatch):
    target = tmp_path / "out.hdf5"
    save_dataset(small_dataset, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.File, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_dataset(small_dataset, target)
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdf5"]  # no temp left behind


def test_discrete_actions_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    ds = Dataset(
        observations=rng.normal(size=(30, 3)),
        actions=rng.integers(0, 4, size=30),
        rewards=rng.normal(size=30),
        terminals=np.arange(30) % 10 == 9,
        metadata={"action_space": {"type": "discrete", "n": 4}},
    )
    assert ds.discrete and ds.action_dim == 4
    for name in ("d.hdf5", "d.npz", "dm"):
        loaded = load_dataset(save_dataset(ds, tmp_path / name))
        assert_same(ds, loaded)
        assert loaded.discrete
