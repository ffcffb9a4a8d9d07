"""Random corruption (Yang et al. 2024): the rate and scale asked for are the ones measured on the output."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.corruption import corrupt_dataset
from policyfit.data import Dataset
from policyfit.data.corrupt import (
    REWARD_RANGE,
    TARGET_FIELD,
    TARGETS,
    adversarial_reward_corruption,
    feature_std,
    random_corruption,
)
from policyfit.data.io import load_dataset, save_dataset
from policyfit.errors import PolicyfitError

N = 20_000


@pytest.fixture(scope="module")
def big() -> Dataset:
    """Actions inside [-0.5, 0.5] of a [-1, 1] box: ε = 1 noise never reaches the bound."""
    rng = np.random.default_rng(1)
    obs = rng.normal(loc=3.0, scale=[0.5, 1.0, 2.0, 4.0], size=(N + 1, 4)).astype(np.float32)
    return Dataset(
        observations=obs[:-1],
        actions=rng.uniform(-0.5, 0.5, size=(N, 2)).astype(np.float32),
        rewards=rng.normal(2.0, 1.0, size=N).astype(np.float32),
        terminals=np.zeros(N, bool),
        timeouts=np.arange(N) % 200 == 199,
        next_observations=obs[1:],
        metadata={
            "action_space": {"type": "box", "low": [-1.0, -1.0], "high": [1.0, 1.0]},
            "card": {"behavior": "synthetic"},
        },
        source="big",
    )


def changed_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).reshape(len(a), -1).any(axis=1)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("rate", [0.3, 0.1])
def test_rate_and_mask_are_exactly_the_changed_rows(big, target, rate):
    bad = random_corruption(big, target, rate=rate, scale=1.0, seed=3)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    assert mask.dtype == bool and mask.shape == (N,)
    # Binomial(N, c): 4 standard deviations.
    assert abs(mask.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / N)
    field = TARGET_FIELD[target]
    np.testing.assert_array_equal(changed_rows(getattr(bad, field), getattr(big, field)), mask)
    for other in ("observations", "actions", "rewards", "next_observations", "terminals"):
        if other != field:
            np.testing.assert_array_equal(getattr(bad, other), getattr(big, other))
    info = bad.metadata["corruption"]
    assert info["n_corrupted"] == mask.sum() == info["n_selected"]
    assert info["measured"]["rate"] == pytest.approx(mask.mean())
    assert (info["target"], info["mode"], info["rate"], info["seed"]) == (target, "random", rate, 3)
    assert info["source_fingerprint"] == big.fingerprint()
    np.testing.assert_array_equal(bad.metadata["extra_arrays"][f"corrupted_{target}"], mask)


@pytest.mark.parametrize("target", ["observations", "actions", "dynamics"])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_perturbation_is_uniform_within_scale_times_std(big, target, scale):
    field = TARGET_FIELD[target]
    bad = random_corruption(big, target, rate=0.3, scale=scale, seed=0)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    std = feature_std(getattr(big, field))
    lam = (getattr(bad, field)[mask].astype(np.float64) - getattr(big, field)[mask]) / std
    # λ ~ U(-ε, ε) per dimension: bounded by ε, reaching it, mean 0, E|λ| = ε/2, Var = ε²/3.
    assert np.abs(lam).max() <= scale * (1 + 1e-4)
    assert np.abs(lam).max() > 0.99 * scale
    assert np.abs(lam.mean(axis=0)).max() < 0.03 * scale
    np.testing.assert_allclose(np.abs(lam).mean(axis=0), scale / 2, rtol=0.04)
    np.testing.assert_allclose(lam.var(axis=0), scale**2 / 3, rtol=0.06)
    measured = bad.metadata["corruption"]["measured"]
    assert measured["max_abs_delta_over_std"] == pytest.approx(np.abs(lam).max(), rel=1e-6)


def test_observation_target_changes_s_only_and_dynamics_s_prime_only(big):
    obs = random_corruption(big, "observations", seed=0)
    dyn = random_corruption(big, "dynamics", seed=0)
    np.testing.assert_array_equal(obs.next_observations, big.next_observations)
    np.testing.assert_array_equal(dyn.observations, big.observations)
    # one seed selects the same transitions whatever the target
    np.testing.assert_array_equal(
        obs.metadata["extra_arrays"]["corrupted"], dyn.metadata["extra_arrays"]["corrupted"]
    )


def test_rewards_are_replaced_by_uniform_30_eps(big):
    for scale in (1.0, 0.5):
        bad = random_corruption(big, "rewards", rate=0.3, scale=scale, seed=0)
        mask = bad.metadata["extra_arrays"]["corrupted"]
        r = bad.rewards[mask].astype(np.float64)
        hi = REWARD_RANGE * scale
        assert r.min() >= -hi and r.max() <= hi
        assert r.min() < -0.99 * hi and r.max() > 0.99 * hi
        assert abs(r.mean()) < 0.03 * hi  # replaced (mean 0), not added to the clean mean of 2
        assert np.var(r) == pytest.approx(hi**2 / 3, rel=0.05)
        np.testing.assert_array_equal(bad.rewards[~mask], big.rewards[~mask])


def test_adversarial_rewards_are_minus_eps_r(big):
    bad = adversarial_reward_corruption(big, rate=0.3, scale=0.5, seed=2)
    mask = bad.metadata["extra_arrays"]["corrupted"]
    np.testing.assert_allclose(bad.rewards[mask], -0.5 * big.rewards[mask], rtol=1e-6)
    np.testing.assert_array_equal(bad.rewards[~mask], big.rewards[~mask])
    via_api = corrupt_dataset(big, "rewards", mode="adversarial", rate=0.3, scale=0.5, seed=2)
    np.testing.assert_array_equal(via_api.rewards, bad.rewards)


def test_same_seed_same_corruption_other_seed_other(big):
    a = corrupt_dataset(big, "observations", rate=0.3, scale=1.0, seed=7)
    b = corrupt_dataset(big, "observations", rate=0.3, scale=1.0, seed=7)
    c = corrupt_dataset(big, "observations", rate=0.3, scale=1.0, seed=8)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    np.testing.assert_array_equal(
        a.metadata["extra_arrays"]["corrupted"], b.metadata["extra_arrays"]["corrupted"]
    )
    assert big.fingerprint() == big.fingerprint()  # the input is left alone
    assert "corruption" not in big.metadata


def test_actions_are_clipped_to_the_action_space_and_mask_skips_unchanged_rows():
    # Every action sits on the bound; ε = 1 pushes half of the draws out, which clipping undoes.
    n = 4000
    rng = np.random.default_rng(0)
    ds = Dataset(
        observations=rng.normal(size=(n, 2)),
        actions=np.where(rng.random((n, 1)) < 0.5, -1.0, 1.0),
        rewards=np.zeros(n),
        terminals=np.arange(n) % 100 == 99,
        metadata={"action_space": {"type": "box", "low": [-1.0], "high": [1.0]}},
    )
    bad = random_corruption(ds, "actions", rate=0.5, scale=1.0, seed=0)
    assert bad.actions.min() >= -1.0 and bad.actions.max() <= 1.0
    info, mask = bad.metadata["corruption"], bad.metadata["extra_arrays"]["corrupted"]
    np.testing.assert_array_equal(mask, changed_rows(bad.actions, ds.actions))
    # about half of the selected rows were pushed outward and clipped back: not counted as corrupted
    assert 0.4 < info["n_corrupted"] / info["n_selected"] < 0.6
    assert "clipped" in bad.metadata["card"]["corruption"]


def test_no_declared_action_space_clips_to_the_data_range(big):
    ds = Dataset(
        observations=big.observations,
        actions=big.actions,
        rewards=big.rewards,
        terminals=big.terminals,
        timeouts=big.timeouts,
    )
    bad = random_corruption(ds, "actions", rate=0.5, scale=1.0, seed=0)
    assert np.all(bad.actions.min(0) >= ds.actions.min(0))
    assert np.all(bad.actions.max(0) <= ds.actions.max(0))


def test_rate_zero_and_one(big):
    none = random_corruption(big, "observations", rate=0.0, seed=0)
    assert none.metadata["corruption"]["n_corrupted"] == 0
    np.testing.assert_array_equal(none.observations, big.observations)
    every = random_corruption(big, "rewards", rate=1.0, seed=0)
    assert every.metadata["extra_arrays"]["corrupted"].all()


def test_corrupting_twice_stacks_masks_and_history(big):
    once = random_corruption(big, "observations", rate=0.2, seed=0)
    twice = random_corruption(once, "rewards", rate=0.2, seed=1)
    extra = twice.metadata["extra_arrays"]
    np.testing.assert_array_equal(
        extra["corrupted"], extra["corrupted_observations"] | extra["corrupted_rewards"]
    )
    info = twice.metadata["corruption"]
    assert info["target"] == "rewards"
    assert [p["target"] for p in info["previous"]] == ["observations"]
    assert info["source_fingerprint"] == once.fingerprint()


def test_card_and_metadata(big):
    bad = random_corruption(big, "dynamics", rate=0.3, scale=1.0, seed=0)
    card = bad.metadata["card"]
    assert card["behavior"] == "synthetic"
    assert "random corruption of dynamics" in card["corruption"]
    assert "Yang et al." in card["corruption"]
    assert bad.metadata["corruption"]["std"] == pytest.approx(
        feature_std(big.next_observations).tolist()
    )


@pytest.mark.parametrize("fmt", ["npz", "hdf5", "minari"])
def test_mask_and_parameters_survive_every_format(tmp_path, fmt, small_dataset):
    bad = random_corruption(small_dataset, "observations", rate=0.3, seed=0)
    dest = tmp_path / {"npz": "d.npz", "hdf5": "d.hdf5", "minari": "d"}[fmt]
    back = load_dataset(save_dataset(bad, dest, fmt))
    assert back.fingerprint() == bad.fingerprint()
    np.testing.assert_array_equal(
        back.metadata["extra_arrays"]["corrupted"], bad.metadata["extra_arrays"]["corrupted"]
    )
    assert back.metadata["corruption"]["n_corrupted"] == bad.metadata["corruption"]["n_corrupted"]
    assert back.metadata["card"]["corruption"] == bad.metadata["card"]["corruption"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rate": 1.5}, "rate: corruption rate must lie in [0, 1]"),
        ({"rate": -0.1}, "rate: corruption rate must lie in [0, 1]"),
        ({"rate": float("nan")}, "rate: corruption rate must lie in [0, 1]"),
        ({"scale": -1.0}, "scale: corruption scale ε must be a finite number >= 0"),
        ({"target": "labels"}, "target: unknown corruption target 'labels'"),
        ({"mode": "sneaky"}, "mode: unknown corruption mode 'sneaky'"),
    ],
)
def test_bad_arguments_are_one_line_errors(small_dataset, kwargs, fragment):
    args = {"target": "observations", "mode": "random", **kwargs}
    with pytest.raises(PolicyfitError) as err:
        corrupt_dataset(small_dataset, **args)
    assert fragment in str(err.value)


def test_discrete_actions_cannot_be_corrupted_but_observations_can():
    n = 200
    ds = Dataset(
        observations=np.random.default_rng(0).normal(size=(n, 3)),
        actions=np.arange(n) % 3,
        rewards=np.ones(n),
        terminals=np.arange(n) % 50 == 49,
        metadata={"action_space": {"type": "discrete", "n": 3}},
    )
    with pytest.raises(PolicyfitError, match="continuous actions"):
        corrupt_dataset(ds, "actions")
    assert corrupt_dataset(ds, "observations").metadata["corruption"]["n_corrupted"] > 0
