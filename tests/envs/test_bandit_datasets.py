"""The DoC bandits as built-in datasets and registered environments."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.data.io import load_dataset as load_file
from policyfit.envs.datasets import list_datasets, load_dataset
from policyfit.envs.registry import make_env
from policyfit.errors import PolicyfitError


def test_doc_bandit_is_built_in_with_reference_scores():
    ds = load_dataset("doc-bandit", size=2000, seed=3)
    assert len(ds) == 2000 and ds.env_id == "policyfit/DocBandit-v0"
    # random arm: (0.1 + 0.9) / 2; best arm 0.9
    assert ds.metadata["ref_min_score"] == pytest.approx(0.5)
    assert ds.metadata["ref_max_score"] == pytest.approx(0.9)
    good = ds.actions[:, 1] == 1
    assert good.mean() == pytest.approx(0.1, abs=0.02)  # the behaviour pulls the good arm 10%
    assert ds.rewards[good].mean() == pytest.approx(0.9, abs=0.06)
    assert ds.rewards[~good].mean() == pytest.approx(0.1, abs=0.03)
    names = {row["name"] for row in list_datasets()}
    assert {"doc-bandit", "lucky-bandit"} <= names


def test_bandit_environment_pays_the_pulled_arm():
    env = make_env("policyfit/LuckyBandit-v0", seed=0)
    paid = {0: [], 1: []}
    rng = np.random.default_rng(0)
    for _ in range(3000):
        env.reset()
        arm = int(rng.integers(2))
        action = np.eye(2, dtype=np.float32)[arm]
        _, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated and info["arm"] == arm
        paid[arm].append(reward)
    assert np.mean(paid[0]) == pytest.approx(0.2, abs=0.04)
    assert np.mean(paid[1]) == pytest.approx(0.8, abs=0.04)


def test_data_make_writes_a_readable_file_and_rejects_bad_sizes(tmp_path):
    out = tmp_path / "lucky.hdf5"
    result = CliRunner().invoke(
        cli, ["data", "make", "lucky-bandit", "--size", "50", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(load_file(out)) == 50
    with pytest.raises(PolicyfitError, match="size: must be >= 1"):
        load_dataset("doc-bandit", size=0)
