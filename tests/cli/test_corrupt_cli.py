"""``policyfit data corrupt``: writes the corrupted dataset with its mask; bad flags are one-line errors."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.data.io import load_dataset, save_dataset


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_random_corruption_round_trip(tmp_path, small_dataset):
    src = save_dataset(small_dataset, tmp_path / "src.hdf5")
    out = tmp_path / "bad.npz"
    result = run(
        "data", "corrupt", str(src), "--target", "observations", "--rate", "0.5", "--scale", "0.5",
        "--seed", "3", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bad = load_dataset(out)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    k = int(mask.sum())
    assert f"corrupted {k:,} of {len(bad):,} transitions" in result.output
    assert "random observations" in result.output and str(out) in result.output
    info = bad.metadata["corruption"]
    assert (info["rate"], info["scale"], info["seed"], info["n_corrupted"]) == (0.5, 0.5, 3, k)
    np.testing.assert_array_equal(
        (bad.observations != small_dataset.observations).any(axis=1), mask
    )


def test_adversarial_rewards(tmp_path, small_dataset):
    src = save_dataset(small_dataset, tmp_path / "src.npz")
    out = tmp_path / "bad.hdf5"
    result = run(
        "data",
        "corrupt",
        str(src),
        "--target",
        "rewards",
        "--mode",
        "adversarial",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    bad = load_dataset(out)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    np.testing.assert_allclose(bad.rewards[mask], -small_dataset.rewards[mask], rtol=1e-6)


def test_bad_flags_are_one_line_errors(tmp_path, small_dataset):
    src = str(save_dataset(small_dataset, tmp_path / "src.hdf5"))
    out = str(tmp_path / "bad.hdf5")
    base = ("data", "corrupt", src, "--target", "actions", "--out", out)
    assert_one_line_error(run(*base, "--rate", "1.5"), "rate:", "[0, 1]")
    assert_one_line_error(run(*base, "--rate", "-0.2"), "rate:", "[0, 1]")
    assert_one_line_error(run(*base, "--scale", "-1"), "scale:", ">= 0")
    assert_one_line_error(
        run("data", "corrupt", str(tmp_path / "nope.hdf5"), "--target", "rewards", "--out", out),
        "nope.hdf5",
        "no such file",
    )
    assert not (tmp_path / "bad.hdf5").exists()
    unknown = run("data", "corrupt", src, "--target", "labels", "--out", out)
    assert unknown.exit_code == 2 and "labels" in unknown.output
