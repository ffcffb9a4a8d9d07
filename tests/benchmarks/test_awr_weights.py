"""benchmarks/awr_weights.py: the AWR weights a trained IQL run puts on corrupted rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pendulum_data import pendulum_dataset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def awr():
    spec = importlib.util.spec_from_file_location("bench_awr_weights", BENCH / "awr_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_split_by_the_corruption_mask(awr, tmp_path):
    import policyfit
    from policyfit.corruption import corrupt_dataset
    from policyfit.data.io import save_dataset

    data = tmp_path / "bad.npz"
    save_dataset(corrupt_dataset(pendulum_dataset(episodes=3), "rewards", seed=0), data)
    run = tmp_path / "run"
    policyfit.train(
        "iql", str(data), steps=40, seed=0, out=run, eval_every=0, eval_episodes=1,
        save_every=20, progress=False, config={"temperature": 3.0},
    )  # fmt: skip
    found = awr.weights_of(run, data)
    with np.load(data) as z:
        mask = z["corrupted"].astype(bool)
    assert found["step"] == 40
    assert found["corrupted_rows"] == pytest.approx(mask.mean())
    assert 0.0 < found["weight_share_corrupted"] < 1.0
    assert 1e-3 < found["mean_weight_corrupted"] <= 100.0
    # the share is what the mean weights and row counts imply
    corrupted = found["mean_weight_corrupted"] * mask.sum()
    clean = found["mean_weight_clean"] * (~mask).sum()
    assert found["weight_share_corrupted"] == pytest.approx(
        corrupted / (corrupted + clean), rel=1e-4
    )
    assert json.loads((run / "config.json").read_text())["algorithm"] == "iql"
    assert awr.weights_of(tmp_path / "no-run", data) is None
