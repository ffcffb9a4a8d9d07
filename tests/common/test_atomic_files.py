"""The one atomic writer: files get the mode the umask gives, a failed write leaves nothing."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from policyfit.common.files import (
    atomic_write,
    atomic_write_npz,
    atomic_write_text,
    dumps,
    to_jsonable,
    write_json,
)
from policyfit.data.io import load_dataset, save_dataset


@pytest.fixture
def umask():
    """Set a umask for one test, restore the old one afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_datasets_and_results_get_the_umask_mode(
    tmp_path, small_dataset, umask, mask, expected
):
    umask(mask)
    hdf5 = save_dataset(small_dataset, tmp_path / "data.hdf5")
    npz = save_dataset(small_dataset, tmp_path / "data.npz")
    result = write_json(tmp_path / "result.json", {"score": np.float32(1.5)})
    for path in (hdf5, npz, result):
        assert _mode(path) == expected, path.name
    # and they read back (the temporary names were renamed, not copied)
    assert len(load_dataset(hdf5)) == len(load_dataset(npz)) == len(small_dataset)
    assert json.loads(result.read_text()) == {"score": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.hdf5", "data.npz", "result.json"]


def test_a_failing_writer_leaves_no_file_behind(tmp_path):
    def half_then_crash(tmp):
        tmp.write_bytes(b"half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "out.bin", half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "summary.json", '{"ok": true}')

    def crash(tmp):
        tmp.write_text("{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == '{"ok": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unencodable_json_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="Circular reference"):
        loop: list = []
        loop.append(loop)
        write_json(tmp_path / "loop.json", loop)
    assert list(tmp_path.iterdir()) == []


def test_npz_keeps_its_name(tmp_path):
    path = atomic_write_npz(tmp_path / "buffer.npz", {"x": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["buffer.npz"]
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2]


def test_the_json_encoder():
    data = {"a": np.int64(3), "b": np.arange(2.0), "c": tmp_path_like(), "d": {2}}
    assert json.loads(dumps(data, indent=None)) == {"a": 3, "b": [0.0, 1.0], "c": "/x/y", "d": [2]}
    assert dumps({"b": 1, "a": 2}, indent=None, sort_keys=True) == '{"a": 2, "b": 1}'
    plain = to_jsonable({1: (np.float32(0.5), float("nan"), np.bool_(True)), "p": tmp_path_like()})
    assert plain == {"1": [0.5, None, True], "p": "/x/y"}


def tmp_path_like():
    from pathlib import PurePosixPath

    return PurePosixPath("/x/y")
