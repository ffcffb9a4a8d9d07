"""Bernoulli TS's slate distribution under a Beta prior (the OBD real-data check's target)."""

import numpy as np
import pytest

from policyfit.bandit.obd import bts_action_dist, bts_prior
from policyfit.errors import DatasetError


def test_bts_action_dist_is_a_slate_distribution():
    alpha = np.array([1000.0, 1.0, 1.0, 1.0])
    beta = np.array([1.0, 1000.0, 1000.0, 1000.0])  # item 0 is always drawn first
    dist = bts_action_dist(alpha, beta, n_rounds=5, len_list=3, n_sim=20_000, seed=0)
    assert dist.shape == (5, 4, 3)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)  # each slot holds one item
    assert np.all(dist.sum(axis=2) <= 1.0 + 1e-12)  # an item takes at most one slot
    assert dist[0, 0, 0] == 1.0 and dist[0, 0, 1:].sum() == 0.0
    # items 1-3 are exchangeable: a third of slot 1 each, within sampling error
    np.testing.assert_allclose(dist[0, 1:, 1], 1 / 3, atol=0.015)


def test_bts_prior_reads_obps_yaml(tmp_path):
    (tmp_path / "prior_bts.yaml").write_text("all:\n  alpha: [2.0, 3.0]\n  beta: [5.0, 7.0]\n")
    alpha, beta = bts_prior(tmp_path, "all")
    assert alpha.tolist() == [2.0, 3.0] and beta.tolist() == [5.0, 7.0]
    with pytest.raises(DatasetError, match="prior_bts.yaml: men: not OBP's prior table"):
        bts_prior(tmp_path, "men")
    with pytest.raises(DatasetError, match="prior: missing"):
        bts_prior(tmp_path / "nowhere", "all")
