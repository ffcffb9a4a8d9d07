"""Bootstrap intervals and the Agarwal et al. 2021 aggregates: hand-computed values and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.errors import PolicyfitError
from policyfit.evaluation.stats import (
    aggregate_scores,
    bootstrap_ci,
    figure_png_bytes,
    format_interval,
    iqm,
    optimality_gap,
    performance_profile,
    plot_performance_profiles,
    return_summary,
)


def test_point_estimates_match_hand_computed_values():
    # 3 runs x 4 tasks. Task means: 2, 5, 8, 11 -> mean 6.5, median (5 + 8) / 2 = 6.5.
    scores = np.array(
        [
            [1.0, 4.0, 7.0, 10.0],
            [2.0, 5.0, 8.0, 11.0],
            [3.0, 6.0, 9.0, 12.0],
        ]
    )
    agg = aggregate_scores({"a": scores}, reps=200, seed=0, gamma=10.0)["a"]
    assert agg["mean"]["estimate"] == pytest.approx(6.5)
    assert agg["median"]["estimate"] == pytest.approx(6.5)
    # 12 pooled scores 1..12: cut 3 from each end -> mean of 4..9 = 6.5.
    assert agg["iqm"]["estimate"] == pytest.approx(6.5)
    # min(x, 10): 1..10 plus 10, 10 -> (55 + 20) / 12 = 6.25; gap = 10 - 6.25.
    assert agg["optimality_gap"]["estimate"] == pytest.approx(3.75)
    for m in agg.values():
        assert m["ci_low"] <= m["estimate"] <= m["ci_high"]


def test_median_uses_task_means_and_iqm_cuts_outliers():
    skewed = np.array([[0.0, 10.0, 20.0], [0.0, 10.0, 1000.0]])  # task means 0, 10, 510
    agg = aggregate_scores({"a": skewed}, reps=100)["a"]
    assert agg["median"]["estimate"] == pytest.approx(10.0)
    assert agg["mean"]["estimate"] == pytest.approx(520.0 / 3)
    # pooled sorted 0, 0, 10, 10, 20, 1000: cut one each end -> (0 + 10 + 10 + 20) / 4
    assert agg["iqm"]["estimate"] == pytest.approx(10.0)
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)
    assert optimality_gap(np.array([50.0, 120.0, 80.0])) == pytest.approx(100 - 230 / 3)


def test_stratified_bootstrap_keeps_each_task_and_ragged_tasks_work():
    # Task 1 is constant at 0, task 2 at 100: any stratified replicate has mean exactly 50,
    # while an unstratified bootstrap over pooled runs would spread.
    scores = np.array([[0.0, 100.0]] * 5)
    agg = aggregate_scores({"a": scores}, reps=500)["a"]["mean"]
    assert agg["ci_low"] == agg["ci_high"] == 50.0
    ragged = aggregate_scores({"a": [[0.0, 0.0, 0.0], [100.0]]}, reps=200)["a"]
    assert ragged["mean"]["estimate"] == 50.0
    assert ragged["iqm"]["estimate"] == pytest.approx(0.0)  # pooled 0, 0, 0, 100: cut 0 and 100


def _coverage(sample, truth, reps_outer, n, **kw):
    rng = np.random.default_rng(1234)
    hits = 0
    for i in range(reps_outer):
        lo, hi = bootstrap_ci(sample(rng, n), reps=1000, seed=i, **kw)
        hits += lo <= truth <= hi
    return hits / reps_outer


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
    # 200 data sets of 30 exponential(1) draws (skewed): the percentile interval should hold the
    # true mean 1 about 95% of the time (a bit less for skewed data at small n).
    cover = _coverage(lambda rng, n: rng.exponential(1.0, n), 1.0, 200, 30)
    assert 0.90 <= cover <= 0.99, cover
    cover_normal = _coverage(lambda rng, n: rng.normal(5.0, 2.0, n), 5.0, 200, 30)
    assert 0.90 <= cover_normal <= 0.99, cover_normal


def test_bootstrap_ci_with_wrong_statistic_does_not_cover():
    # A check that the coverage test can fail: the 80% interval must cover clearly less.
    cover = _coverage(lambda rng, n: rng.normal(0.0, 1.0, n), 0.0, 200, 30, confidence=0.8)
    assert cover < 0.88


def test_stratified_interval_covers_the_true_aggregate_mean():
    rng = np.random.default_rng(7)
    task_means = np.array([20.0, 50.0, 90.0])
    truth = task_means.mean()
    hits = 0
    for i in range(200):
        scores = task_means + rng.normal(0.0, 15.0, size=(20, 3))
        a = aggregate_scores({"x": scores}, metrics=("mean",), reps=1000, seed=i)["x"]["mean"]
        hits += a["ci_low"] <= truth <= a["ci_high"]
    assert 0.90 <= hits / 200 <= 0.99


def test_return_summary_maps_the_interval_to_normalized_score():
    s = return_summary([1000.0, 2000.0, 3000.0, 2500.0], "Hopper-v5", reps=500)
    lo, hi = -20.272305, 3234.3
    assert s["return_mean"] == 2125.0
    assert s["return_std"] == pytest.approx(np.std([1000.0, 2000.0, 3000.0, 2500.0]))
    assert s["normalized_score_mean"] == pytest.approx(100 * (2125.0 - lo) / (hi - lo))
    assert s["normalized_score_ci_low"] == pytest.approx(
        100 * (s["return_ci_low"] - lo) / (hi - lo)
    )
    assert s["return_ci_low"] < 2125.0 < s["return_ci_high"]
    plain = return_summary([1.0, 2.0], reps=100)
    assert plain["normalized_score_mean"] is None
    custom = return_summary([1.0, 3.0], ref_scores=(0.0, 4.0), reps=100)
    assert custom["normalized_score_mean"] == 50.0
    assert return_summary([5.0], reps=10)["return_ci_low"] == 5.0


def test_bad_input_is_a_user_error():
    with pytest.raises(PolicyfitError, match="NaN"):
        return_summary([1.0, float("nan")])
    with pytest.raises(PolicyfitError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(PolicyfitError, match="unknown metric"):
        aggregate_scores({"a": np.ones((2, 2))}, metrics=("mode",))


def test_performance_profile_values_and_plot():
    prof = performance_profile(
        {"a": np.array([[10.0, 30.0], [20.0, 40.0]]), "b": np.array([[50.0, 60.0]])},
        [0.0, 15.0, 35.0, 55.0],
        reps=300,
    )
    # a: task 1 runs 10, 20; task 2 runs 30, 40. P(X > 15) = (1/2 + 1) / 2.
    assert prof["a"]["profile"].tolist() == [1.0, 0.75, 0.25, 0.0]
    assert prof["b"]["profile"].tolist() == [1.0, 1.0, 1.0, 0.5]
    assert np.all(prof["a"]["ci_low"] <= prof["a"]["profile"])
    assert np.all(prof["a"]["profile"] <= prof["a"]["ci_high"])
    png = figure_png_bytes(plot_performance_profiles(prof))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert format_interval(1.234, 1.0, 2.0, digits=2) == "1.23 [1.00, 2.00]"
