"""The dataset resolver one layer above ``data.io``: files, local Minari ids, built-in names."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import policyfit
from policyfit.cli.main import cli
from policyfit.data import io
from policyfit.envs import datasets
from policyfit.errors import ConfigError, DatasetError


def test_public_load_dataset_is_the_resolver():
    assert policyfit.load_dataset is datasets.load_dataset


def test_file_loads_like_data_io(tmp_path, small_dataset):
    path = io.save_dataset(small_dataset, tmp_path / "d.npz")
    ds = datasets.load_dataset(path)
    assert ds.fingerprint() == small_dataset.fingerprint() == io.load_dataset(path).fingerprint()
    assert datasets.load_dataset(ds) is ds


@pytest.mark.parametrize("field, value", [("size", 10), ("seed", 3)])
def test_size_or_seed_with_a_file_is_an_error_naming_the_field(
    tmp_path, small_dataset, field, value
):
    path = io.save_dataset(small_dataset, tmp_path / "d.hdf5")
    with pytest.raises(ConfigError) as info:
        datasets.load_dataset(path, **{field: value})
    err = info.value
    assert err.field == field and err.path == str(path)
    assert f"{field}={value} applies only to built-in datasets" in str(err)
    assert f"drop {field}" in str(err)


def test_size_with_a_local_minari_id_is_an_error(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    io.save_dataset(small_dataset, tmp_path / "root" / "test" / "small-v0", format="minari")
    assert len(datasets.load_dataset("test/small-v0")) == len(small_dataset)
    with pytest.raises(ConfigError, match="size=5 applies only"):
        datasets.load_dataset("test/small-v0", size=5)


def test_unknown_name_lists_built_in_names_but_data_io_does_not_know_them(tmp_path):
    with pytest.raises(DatasetError, match="built-in names: hopper-random, hopper-medium"):
        datasets.load_dataset(tmp_path / "nope.hdf5")
    # The data layer reads files only: a suite name is just a missing path there.
    with pytest.raises(DatasetError, match="no such file or local Minari dataset") as info:
        io.load_dataset("hopper-medium")
    assert info.value.field == "path"


def test_built_in_name_goes_to_the_suite_with_size_and_seed(monkeypatch, small_dataset):
    calls = []

    def fake_make_dataset(name, size=None, seed=0, **_):
        calls.append((name, size, seed))
        return small_dataset

    monkeypatch.setattr(datasets.suite, "make_dataset", fake_make_dataset)
    assert datasets.load_dataset("Hopper-Medium", size=500, seed=2) is small_dataset
    assert datasets.load_dataset("hopper-expert") is small_dataset
    assert calls == [("Hopper-Medium", 500, 2), ("hopper-expert", None, 0)]


def test_cli_inspect_rejects_size_with_a_file(tmp_path, small_dataset):
    path = io.save_dataset(small_dataset, tmp_path / "d.hdf5")
    result = CliRunner().invoke(cli, ["data", "inspect", str(path), "--size", "100"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: size: size=100 applies only")
