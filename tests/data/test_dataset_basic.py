import numpy as np
import pytest

from policyfit.data import Dataset
from policyfit.errors import DatasetError


def small(n=6, **kw):
    rng = np.random.default_rng(0)
    arrays = dict(
        observations=rng.normal(size=(n, 3)),
        actions=rng.uniform(-1, 1, size=(n, 2)),
        rewards=np.arange(n, dtype=float),
        terminals=np.zeros(n),
        timeouts=np.zeros(n),
    )
    arrays["timeouts"][2] = 1
    arrays["timeouts"][-1] = 1
    arrays.update(kw)
    return Dataset(**arrays)


def test_episodes_and_returns():
    ds = small()
    assert ds.num_episodes == 2
    assert ds.episode_lengths.tolist() == [3, 3]
    assert ds.episode_returns().tolist() == [0 + 1 + 2, 3 + 4 + 5]
    assert ds.returns_to_go().tolist() == [3, 3, 2, 12, 9, 5]


def test_nan_rejected_with_field_and_index():
    rewards = np.arange(6, dtype=float)
    rewards[4] = np.nan
    with pytest.raises(
        DatasetError, match=r"rewards: contains 1 NaN values \(first at transition 4\)"
    ):
        small(rewards=rewards)
