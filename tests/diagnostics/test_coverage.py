import math

import numpy as np
import pytest

from policyfit.data import Dataset
from policyfit.diagnostics.coverage import (
    HyperLogLog,
    count_unique_rows,
    discretize,
    hash_rows,
    state_action_coverage,
    trajectory_quality,
)
from policyfit.errors import ConfigError


def _dataset(obs, act, rewards, ends, **md):
    n = len(obs)
    timeouts = np.zeros(n, bool)
    timeouts[ends] = True
    return Dataset(
        observations=np.asarray(obs, float),
        actions=np.asarray(act),
        rewards=np.asarray(rewards, float),
        terminals=np.zeros(n),
        timeouts=timeouts,
        metadata=md,
    )


def test_tq_hand_computed():
    # two episodes with returns 30 and 50 -> mean 40; random 0, expert 100 -> TQ 0.4
    assert trajectory_quality(np.array([30.0, 50.0]), 0.0, 100.0) == pytest.approx(0.4)
    assert trajectory_quality(np.array([-10.0]), -10.0, 90.0) == 0.0
    with pytest.raises(
        ConfigError, match=r"^ref_scores: the random and expert returns must differ, both are 5$"
    ):
        trajectory_quality(np.array([1.0]), 5.0, 5.0)


def test_tq_through_diagnose_uses_metadata_then_user_scores():
    from policyfit.diagnostics.card import diagnose

    ds = _dataset(
        np.arange(6)[:, None],
        np.zeros((6, 1)),
        [10, 10, 10, 20, 20, 20],
        [2, 5],
        ref_min_score=0.0,
        ref_max_score=90.0,
    )
    card = diagnose(ds, reference=None)
    assert card.tq["value"] == pytest.approx(45.0 / 90.0)
    assert card.tq["source"] == "dataset metadata"
    card = diagnose(ds, reference=None, ref_scores=(45.0, 55.0))
    assert card.tq["value"] == pytest.approx(0.0)
    assert card.tq["source"] == "user"
    no_refs = _dataset(np.arange(6)[:, None], np.zeros((6, 1)), np.ones(6), [2, 5])
    card = diagnose(no_refs, reference=None)
    assert card.tq["value"] is None and "ref_scores" in card.tq["reason"]


def test_discretize_100_bins_edges():
    codes = discretize(
        np.array([[0.0], [0.0099], [0.01], [0.999], [1.0], [2.0], [-1.0]]), [0.0], [1.0]
    )
    assert codes[:, 0].tolist() == [0, 0, 1, 99, 99, 99, 0]
    # a constant dimension is one bin
    assert discretize(np.full((3, 1), 5.0), [5.0], [5.0])[:, 0].tolist() == [0, 0, 0]


def test_saco_known_answer():
    # reference: states 0..9 on a 10-bin grid, two actions -> 20 unique pairs
    ref_obs = np.repeat(np.arange(10.0), 2)[:, None]
    ref_act = np.tile([[0.0], [1.0]], (10, 1))
    # dataset: states 0..4, always action 0, each visited three times -> 5 unique pairs
    obs = np.repeat(np.arange(5.0), 3)[:, None]
    act = np.zeros((15, 1))
    out = state_action_coverage(obs, act, ref_obs, ref_act, bins=10)
    assert out["unique_pairs"] == 5
    assert out["reference_unique_pairs"] == 20
    assert out["saco"] == pytest.approx(0.25)
    assert out["lsaco"] == pytest.approx(math.log(5) / math.log(20))
    assert out["exact"]


def test_saco_uses_the_union_grid():
    # the dataset reaches beyond the reference range: both are binned on the joint range [0, 20]
    ref_obs = np.arange(10.0)[:, None]  # 0..9 -> 5 bins of width 2 on [0, 20] with 10 bins
    obs = np.array([[0.0], [19.9], [20.0]])
    out = state_action_coverage(obs, np.zeros((3, 1)), ref_obs, np.zeros((10, 1)), bins=10)
    assert out["reference_unique_pairs"] == 5
    assert out["unique_pairs"] == 2


def test_saco_discrete_actions():
    obs = np.zeros((6, 2))
    out = state_action_coverage(
        obs, np.array([0, 1, 2, 0, 1, 2]), obs[:2], np.array([0, 0]), bins=100
    )
    assert (out["unique_pairs"], out["reference_unique_pairs"]) == (3, 1)


def test_hyperloglog_close_to_exact_count():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 100, size=(200_000, 6)).astype(np.uint8)
    codes[100_000:] = codes[:100_000]  # half duplicates
    exact = count_unique_rows(codes)
    assert exact == pytest.approx(100_000, rel=1e-3)
    approx = count_unique_rows(codes, exact_max_rows=1000, chunk=30_000)
    assert approx == pytest.approx(exact, rel=0.03)


def test_hyperloglog_small_counts_and_merge():
    a, b = HyperLogLog(), HyperLogLog()
    a.add_hashes(hash_rows(np.arange(500)[:, None].astype(np.uint16)))
    b.add_hashes(hash_rows(np.arange(250, 750)[:, None].astype(np.uint16)))
    assert a.count() == pytest.approx(500, rel=0.02)
    a.merge(b)
    assert a.count() == pytest.approx(750, rel=0.02)


def test_hash_rows_distinguishes_rows_and_is_deterministic():
    codes = np.array([[1, 2, 3], [3, 2, 1], [1, 2, 3]], dtype=np.uint8)
    h = hash_rows(codes)
    assert h[0] == h[2] and h[0] != h[1]
    assert np.array_equal(h, hash_rows(codes))
