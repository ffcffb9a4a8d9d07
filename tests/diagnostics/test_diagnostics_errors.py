"""diagnose() and its measures: bad options, references and reference returns are one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from policyfit.diagnostics.anomalies import detect_anomalies
from policyfit.diagnostics.card import diagnose
from policyfit.diagnostics.coverage import HyperLogLog
from policyfit.diagnostics.neighbors import knn_indices, neighbour_spread
from policyfit.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def tiny(make_linear_ds):
    return make_linear_ds(episodes=4, length=25)


def edited(ds, **metadata):
    out = ds[:]
    out.metadata.update(metadata)
    return out


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (
            lambda ds: diagnose(ds, reference=3),
            ConfigError,
            "reference: must be a Dataset, 'auto' or None, not int 3; load a reference dataset "
            "first (policyfit.load_dataset)",
        ),
        (
            lambda ds: diagnose(ds, reference="hopper-medium-replay"),
            ConfigError,
            "reference: must be a Dataset, 'auto' or None, not str 'hopper-medium-replay'; load a "
            "reference dataset first (policyfit.load_dataset)",
        ),
        (
            lambda ds: diagnose("logs.hdf5"),
            ConfigError,
            "dataset: must be a Dataset, not str; load it first (policyfit.load_dataset)",
        ),
        (
            lambda ds: diagnose(ds, reference=None, ref_scores=(5.0, 5.0)),
            ConfigError,
            "ref_scores: the random and expert returns must be finite and differ, got (5, 5)",
        ),
        (
            lambda ds: diagnose(ds, reference=None, ref_scores={"random": 0.0, "expert": 1.0}),
            ConfigError,
            "ref_scores: must be (random_return, expert_return) or a dict with ref_min_score and "
            "ref_max_score, got {'random': 0.0, 'expert': 1.0}",
        ),
        (
            lambda ds: diagnose(ds, reference=None, ref_scores=(0.0, 1.0, 2.0)),
            ConfigError,
            "ref_scores: must be (random_return, expert_return) or a dict with ref_min_score and "
            "ref_max_score, got (0.0, 1.0, 2.0)",
        ),
        (
            lambda ds: diagnose(edited(ds, ref_min_score=7, ref_max_score=7.0), reference=None),
            DatasetError,
            "linear-system: metadata.ref_max_score: ref_min_score and ref_max_score must be "
            "finite numbers that differ, got 7 and 7.0; fix the metadata or pass "
            "ref_scores=(random, expert)",
        ),
        (
            lambda ds: diagnose(edited(ds, ref_min_score="low"), reference=None),
            DatasetError,
            "linear-system: metadata.ref_max_score: ref_min_score and ref_max_score must be "
            "finite numbers that differ, got 'low' and 0.0; fix the metadata or pass "
            "ref_scores=(random, expert)",
        ),
        (lambda ds: diagnose(ds, bins=0), ConfigError, "bins: must be an integer >= 1, got 0"),
        (lambda ds: diagnose(ds, k=2.5), ConfigError, "k: must be an integer >= 1, got 2.5"),
        (
            lambda ds: diagnose(ds, sample_size=-1),
            ConfigError,
            "sample_size: must be an integer >= 1, got -1",
        ),
        (
            lambda ds: diagnose(ds, z_threshold=0),
            ConfigError,
            "z_threshold: must be a finite number in (0, inf), got 0",
        ),
        (
            lambda ds: diagnose(ds, exact_max_rows=0),
            ConfigError,
            "exact_max_rows: must be an integer >= 1, got 0",
        ),
        (lambda ds: diagnose(ds, seed=-1), ConfigError, "seed: must be an integer >= 0, got -1"),
        (
            lambda ds: detect_anomalies(ds, k=0),
            ConfigError,
            "k: must be an integer >= 1, got 0",
        ),
        (
            lambda ds: detect_anomalies(ds, z_threshold=float("inf")),
            ConfigError,
            "z_threshold: must be a finite number in (0, inf), got inf",
        ),
        (
            lambda ds: detect_anomalies(ds, reference_size=0),
            ConfigError,
            "reference_size: must be an integer >= 1, got 0",
        ),
        (
            lambda ds: neighbour_spread(ds.observations, ds.actions, k=0),
            ConfigError,
            "k: must be an integer >= 1, got 0",
        ),
        (
            lambda ds: knn_indices(ds.observations, np.arange(5), np.arange(50), k=-1),
            ConfigError,
            "k: must be an integer >= 1, got -1",
        ),
        (lambda ds: HyperLogLog(3), ConfigError, "precision: must be an integer in [4, 18], got 3"),
    ],
)
def test_user_errors(tiny, call, kind, message):
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        call(tiny)


def test_reference_scores_as_a_dict_still_work(tiny):
    card = diagnose(
        tiny, reference=None, ref_scores={"ref_min_score": -4000.0, "ref_max_score": 0.0}
    )
    mean_return = float(tiny.episode_returns().mean())
    assert card.tq["value"] == pytest.approx((mean_return + 4000.0) / 4000.0)
    assert card.tq["source"] == "user"
