"""Environment registry: D4RL reference returns and the normalized score."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.envs.registry import ENVS, get_env_spec, normalized_score
from policyfit.errors import PolicyfitError


@pytest.mark.parametrize(
    ("env_id", "random", "expert"),
    [
        ("Hopper-v5", -20.272305, 3234.3),
        ("HalfCheetah-v5", -280.178953, 12135.0),
        ("Walker2d-v5", 1.629008, 4592.3),
    ],
)
def test_reference_returns_are_d4rl_and_normalize_to_0_and_100(env_id, random, expert):
    spec = get_env_spec(env_id)
    assert (spec.ref_min_score, spec.ref_max_score) == (random, expert)
    assert normalized_score(env_id, random) == pytest.approx(0.0)
    assert normalized_score(env_id, expert) == pytest.approx(100.0)
    halfway = (random + expert) / 2
    np.testing.assert_allclose(normalized_score(env_id, np.array([halfway, expert])), [50.0, 100.0])


def test_lookup_by_suite_prefix_and_unknown_env():
    assert get_env_spec("walker2d").env_id == "Walker2d-v5"
    assert set(ENVS) == {"Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"}
    with pytest.raises(PolicyfitError, match="unknown environment"):
        get_env_spec("Ant-v5")
