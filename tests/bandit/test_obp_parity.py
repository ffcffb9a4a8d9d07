"""benchmarks/obp_parity.py: the verdict of each compared value, and (when OBP's environment
``benchmarks/.venv-obp`` exists) OBP itself on one small dataset agreeing with policyfit."""

from __future__ import annotations

import math

import pytest

from bench_modules import BENCH, benchmark

OBP_PYTHON = BENCH / ".venv-obp" / "bin" / "python"


@pytest.fixture(scope="module")
def parity():
    with benchmark("obp_parity") as module:
        yield module


def test_verdicts(parity):
    assert parity.compare(0.5, 0.5 + 5e-7)["status"] == "equal"
    assert parity.compare(0.5, 0.5 + 2e-6)["status"] == "DIFFERENT"
    nan = parity.compare(0.3, math.nan)
    assert nan["status"] == "obp-nan" and nan["obp"] is None
    results = {
        "d": {
            "comparison": {
                "ipw": {"value": parity.compare(1.0, 1.0), "mean": parity.compare(1.0, 1.1)},
                "dr-os": {"value": parity.compare(0.2, math.nan)},
            }
        }
    }
    summary = parity.summarize(results)
    assert summary["compared"] == 3 and summary["equal"] == 1
    assert summary["different"] == 1 and summary["obp_nan"] == 1
    assert summary["max_abs_diff"] == pytest.approx(0.1)


@pytest.mark.slow
@pytest.mark.skipif(not OBP_PYTHON.exists(), reason="no OBP environment (benchmarks/.venv-obp)")
def test_obp_itself_agrees_on_a_small_dataset(parity, tmp_path):
    spec = {
        "n_rounds": 300,
        "knobs": dict(
            n_actions=4, dim_context=2, reward_function="logistic", beta=-1.0, random_state=0
        ),
        "policy": dict(kind="greedy"),  # zero weights: OBP's default dr-os is NaN here
    }
    made = parity.make_inputs("small", spec, tmp_path)
    job = {
        "datasets": {"small": {"inputs": made["inputs"], "slots": made["slots"]}},
        "variants": parity.VARIANTS,
        "bootstrap": 20,
        "seed": 3,
    }
    theirs = parity.run_obp(str(OBP_PYTHON), job, tmp_path)["datasets"]["small"]
    ours = parity.policyfit_side(made, 20, 3)
    rows = parity.compare_all(ours, theirs)
    statuses = {label: row["value"]["status"] for label, row in rows.items()}
    assert statuses.pop("dr-os") == "obp-nan"
    assert statuses.pop("sg-dr(lambda=1)") == "obp-nan"
    assert set(statuses.values()) == {"equal"}
    assert all(
        cell["status"] in ("equal", "obp-nan") for row in rows.values() for cell in row.values()
    )
