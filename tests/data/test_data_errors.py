"""Dataset, random corruption and sampler misuse: one-line DatasetError/ConfigError, not numpy's."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from policyfit.data import Dataset
from policyfit.data.corrupt import random_corruption
from policyfit.data.sampler import TrajectorySampler
from policyfit.errors import ConfigError, DatasetError, PolicyfitError


def with_metadata(ds: Dataset, **changes) -> Dataset:
    """A copy of ``ds`` whose metadata is edited after construction (as a user may edit it)."""
    out = ds[:]
    out.metadata.update(copy.deepcopy(changes))
    return out


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (
            lambda ds: ds[3],
            DatasetError,
            "small: index: cannot index a dataset with int 3; slice transitions (ds[a:b]) or pick "
            "episodes with select_episodes()",
        ),
        (
            lambda ds: ds.episode(6),
            DatasetError,
            "small: episodes: episode index 6 is not an integer in [-6, 6) (6 episodes)",
        ),
        (
            lambda ds: ds.select_episodes([0, -7]),
            DatasetError,
            "small: episodes: episode index -7 is not an integer in [-6, 6) (6 episodes)",
        ),
        (
            lambda ds: ds.select_episodes([0.5]),
            DatasetError,
            "small: episodes: episode index 0.5 is not an integer in [-6, 6) (6 episodes)",
        ),
        (
            lambda ds: Dataset.concatenate([ds, "other.hdf5"]),
            DatasetError,
            "datasets: item 1 is a str, not a Dataset; load it first (policyfit.load_dataset)",
        ),
        (
            lambda ds: Dataset.concatenate(
                [with_metadata(ds, extra_arrays={"corrupted": np.zeros(3, bool)}), ds]
            ),
            DatasetError,
            "small: extra_arrays.corrupted: extra array 'corrupted' has shape (3,), not one row "
            "per transition (250); repair or drop it",
        ),
        (
            lambda ds: random_corruption(ds, "observations", seed=-2),
            ConfigError,
            "seed: must be an integer >= 0, got -2",
        ),
        (
            lambda ds: random_corruption(ds, "observations", scale=float("nan")),
            PolicyfitError,
            "scale: corruption scale ε must be a finite number >= 0, got nan",
        ),
        (
            lambda ds: random_corruption(ds, "observations", rate=None),
            PolicyfitError,
            "rate: corruption rate must lie in [0, 1] (a probability per transition), got None",
        ),
        (
            lambda ds: random_corruption(
                with_metadata(ds, action_space={"type": "box", "low": [-1, -1, -1], "high": 1}),
                "actions",
            ),
            DatasetError,
            "small: action_space.low: the box action space needs 'low' with one number per "
            "action dimension ((2,)), got [-1, -1, -1]; fix or remove the action_space",
        ),
        (
            lambda ds: random_corruption(
                with_metadata(ds, action_space={"type": "box", "low": -1}), "actions"
            ),
            DatasetError,
            "small: action_space.high: the box action space needs 'high' with one number per "
            "action dimension ((2,)), got None; fix or remove the action_space",
        ),
        (
            lambda ds: random_corruption(
                with_metadata(ds, extra_arrays={"corrupted": np.zeros((250, 2), bool)}), "rewards"
            ),
            DatasetError,
            "small: extra_arrays.corrupted: the stored corruption mask has shape (250, 2), "
            "expected (250,) (one flag per transition); drop or repair extra array 'corrupted'",
        ),
        (
            lambda ds: TrajectorySampler(ds, length=0),
            ConfigError,
            "length: window length must be >= 1, got 0",
        ),
    ],
)
def test_user_errors(small_dataset, call, kind, message):
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        call(small_dataset)


def test_negative_episode_index_counts_from_the_end(small_dataset):
    assert small_dataset.episode(-1).start == 200
    assert small_dataset.select_episodes([-1]).num_transitions == 50


# ------------------------------------------------------------------ concatenate keeps extra arrays
def test_concatenate_keeps_the_corruption_mask(small_dataset):
    a = random_corruption(small_dataset, "observations", rate=0.3, seed=1)
    b = random_corruption(small_dataset[:100], "rewards", rate=0.5, seed=2)
    both = Dataset.concatenate([a, b])
    extra = both.metadata["extra_arrays"]
    mask_a = a.metadata["extra_arrays"]["corrupted"]
    mask_b = b.metadata["extra_arrays"]["corrupted"]
    assert 0 < mask_a.sum() < 250 and 0 < mask_b.sum() < 100
    np.testing.assert_array_equal(extra["corrupted"], np.concatenate([mask_a, mask_b]))
    # each step's own mask: present in one dataset only, so the other's rows are False
    np.testing.assert_array_equal(
        extra["corrupted_observations"], np.concatenate([mask_a, np.zeros(100, bool)])
    )
    np.testing.assert_array_equal(
        extra["corrupted_rewards"], np.concatenate([np.zeros(250, bool), mask_b])
    )
    # the mask still marks exactly the rows whose values differ from the clean data
    changed = np.concatenate(
        [
            (a.observations != small_dataset.observations).any(axis=1),
            b.rewards != small_dataset.rewards[:100],
        ]
    )
    np.testing.assert_array_equal(extra["corrupted"], changed)
    # and follows the rows through episode selection
    tail = both.select_episodes([both.num_episodes - 1])
    np.testing.assert_array_equal(tail.metadata["extra_arrays"]["corrupted"], mask_b[50:])


def test_concatenate_fills_a_missing_mask_with_false(small_dataset):
    bad = random_corruption(small_dataset, "dynamics", rate=0.4, seed=0)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    both = Dataset.concatenate([small_dataset, bad])  # the clean one first: its metadata is used
    got = both.metadata["extra_arrays"]["corrupted"]
    assert got.dtype == bool and got.shape == (500,)
    assert not got[:250].any()
    np.testing.assert_array_equal(got[250:], mask)


def test_concatenate_refuses_to_invent_non_mask_arrays(small_dataset):
    scored = with_metadata(small_dataset, extra_arrays={"weight": np.ones(250)})
    with pytest.raises(
        DatasetError,
        match=re.escape(
            "small: extra_arrays.weight: extra array 'weight' (float64) is missing here but "
            "present in small, and only boolean masks can be filled (with False); add it to "
            "every dataset or drop it"
        ),
    ):
        Dataset.concatenate([scored, small_dataset])
    wide = with_metadata(small_dataset, extra_arrays={"weight": np.ones((250, 2))})
    with pytest.raises(DatasetError, match=r"rows of shape \(2,\) here and \(\) in small"):
        Dataset.concatenate([scored, wide])
    both = Dataset.concatenate([scored, scored])
    np.testing.assert_array_equal(both.metadata["extra_arrays"]["weight"], np.ones(500))


def test_concatenate_without_extra_arrays_adds_none(small_dataset):
    both = Dataset.concatenate([small_dataset, small_dataset])
    assert "extra_arrays" not in both.metadata


@pytest.mark.parametrize(
    ("space", "field", "message"),
    [
        ({"type": "box", "low": [-1.0, -1.0]}, "action_space.high", "missing"),
        ({"type": "box", "low": "x", "high": [1.0, 1.0]}, "action_space.low", "not numbers"),
        ({"type": "box", "low": [-1.0] * 3, "high": [1.0] * 3}, "actions", "3 dimensions"),
    ],
)
def test_a_bad_declared_box_is_one_clear_error(space, field, message):
    with pytest.raises(DatasetError, match=message) as info:
        Dataset(
            observations=np.zeros((4, 2)),
            actions=np.zeros((4, 2)),
            rewards=np.zeros(4),
            terminals=np.array([0, 0, 0, 1]),
            metadata={"action_space": space},
            source="d.npz",
        )
    assert info.value.field == field and info.value.path == "d.npz"


def test_a_scalar_box_bound_applies_to_every_dimension():
    ds = Dataset(
        observations=np.zeros((4, 2)),
        actions=np.full((4, 2), 0.5),
        rewards=np.zeros(4),
        terminals=np.array([0, 0, 0, 1]),
        metadata={"action_space": {"type": "box", "low": -1.0, "high": 1.0}},
    )
    assert ds.action_dim == 2


def test_a_discrete_space_without_n_is_one_clear_error():
    with pytest.raises(DatasetError, match="needs n"):
        Dataset(
            observations=np.zeros((4, 2)),
            actions=np.array([0, 1, 0, 1]),
            rewards=np.zeros(4),
            terminals=np.array([0, 0, 0, 1]),
            metadata={"action_space": {"type": "discrete"}},
        )
