"""benchmarks/stitching.py: the summary and the claim from hand-built rows (no training)."""

from __future__ import annotations

import pytest

from bench_modules import benchmark


@pytest.fixture(scope="module")
def stitching():
    with benchmark("stitching") as module:
        yield module


def rows(algo, returns):
    return [{"algo": algo, "seed": i, "return": r} for i, r in enumerate(returns)]


def test_an_algorithm_stitches_when_its_whole_interval_is_above_the_data_best(stitching):
    data = {"data_best_return": 73.0}
    table = rows("mbrcsl", [90.0, 95.0, 100.0]) + rows("rvs_r", [60.0, 80.0, 70.0])
    summary = stitching.summarize(["mbrcsl", "rvs_r", "iql"], table, data)
    assert set(summary) == {"mbrcsl", "rvs_r"}  # iql has no rows
    assert summary["mbrcsl"]["return_mean"] == pytest.approx(95.0)
    assert summary["mbrcsl"]["stitches"] and summary["mbrcsl"]["seeds_above_data_best"] == 3
    # one seed of rvs_r is above 73, but its interval is not
    assert not summary["rvs_r"]["stitches"] and summary["rvs_r"]["seeds_above_data_best"] == 1
    assert stitching.claim(summary).startswith("reproduced")
    summary["rvs_r"]["stitches"] = True
    assert stitching.claim(summary).startswith("not separated")
    assert stitching.claim({"mbrcsl": summary["mbrcsl"]}).startswith("not measured")
