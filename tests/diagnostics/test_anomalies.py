import copy

import numpy as np
import pytest

from policyfit.data import ARRAY_FIELDS, Dataset
from policyfit.diagnostics.anomalies import corruption_mask, detect_anomalies, robust_z
from policyfit.diagnostics.card import diagnose


def _plant(ds: Dataset, seed: int = 3):
    """Copy of ds with 15 reward, 15 next-state and 15 observation corruptions (disjoint rows)."""
    rng = np.random.default_rng(seed)
    n = len(ds)
    inner = np.setdiff1d(np.arange(1, n - 1), np.r_[ds.episode_ends, ds.episode_ends + 1])
    rows = rng.choice(inner, size=45, replace=False)
    rows = rows[np.argsort(rows)]
    # keep corrupted rows at least 3 apart so the neighbours of each one are clean
    while np.any(np.diff(rows) < 3):
        rows = np.sort(rng.choice(inner, size=45, replace=False))
    rng.shuffle(rows)
    reward_rows, dyn_rows, obs_rows = rows[:15], rows[15:30], rows[30:]
    arrays = {k: getattr(ds, k).copy() for k in ARRAY_FIELDS}
    arrays["rewards"][reward_rows] += 30 * ds.rewards.std() * rng.choice([-1, 1], 15)
    arrays["next_observations"][dyn_rows] += rng.normal(size=(15, ds.observation_dim)) * 2.0
    arrays["observations"][obs_rows] += rng.normal(size=(15, ds.observation_dim)) * 2.0
    mask = np.zeros(n, bool)
    mask[rows] = True
    md = copy.deepcopy(ds.metadata)
    md["extra_arrays"] = {"corrupted": mask}
    return Dataset(**arrays, metadata=md), reward_rows, dyn_rows, obs_rows


def test_robust_z_ignores_the_outliers_it_finds():
    x = np.r_[np.zeros(50), np.ones(50), 1e6]
    z = robust_z(x)
    assert z[-1] > 1e5 and np.all(np.abs(z[:-1]) <= 1.01)


def test_spread_floor_keeps_multimodal_clean_data_unflagged():
    # a replay-buffer-like marginal: 70 % of rows from a policy that holds a joint still, 30 % from
    # early policies that swing it widely (walker2d-medium-replay has such dimensions)
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.0, 0.01, 7000), rng.normal(0.0, 0.3, 3000)]
    mad_only = np.abs(robust_z(x))
    floored = np.abs(robust_z(x, spread_quantile=0.1))
    assert (mad_only > 18).mean() > 0.05  # the failure the floor fixes
    assert (floored > 18).mean() == 0.0
    # a gross error is still far out
    assert np.abs(robust_z(np.r_[x, 50.0], spread_quantile=0.1))[-1] > 100


def test_clean_data_has_few_flags(linear_ds):
    flags = detect_anomalies(linear_ds)
    assert flags.any.mean() < 0.01
    assert flags.continuity_checked


def test_detector_finds_planted_outliers_by_type(linear_ds):
    ds, reward_rows, dyn_rows, obs_rows = _plant(linear_ds)
    flags = detect_anomalies(ds)
    assert flags.flags["reward"][reward_rows].all()
    assert flags.flags["dynamics"][dyn_rows].all()
    assert flags.flags["observation"][obs_rows].all()
    mask = corruption_mask(ds)
    precision = (flags.any & mask).sum() / flags.any.sum()
    assert precision > 0.8


def test_card_reports_precision_recall_against_stored_mask(linear_ds):
    ds, *_ = _plant(linear_ds)
    card = diagnose(ds, reference=None)
    pr = card.anomalies["precision_recall"]
    assert pr["corrupted"] == 45
    assert pr["any"]["recall"] == 1.0
    assert pr["any"]["precision"] > 0.8
    assert any("precision" in line for line in card.verdict)
    flagged = {e["index"] for e in card.anomalies["examples"]}
    assert flagged <= set(np.flatnonzero(card.flags.any).tolist())


def test_mask_under_corruption_key_and_per_dimension(linear_ds):
    md = copy.deepcopy(linear_ds.metadata)
    mask = np.zeros((len(linear_ds), 3), bool)
    mask[7, 1] = True
    md["corruption"] = {"mask": mask, "kind": "observation"}
    ds = Dataset(
        **{
            k: getattr(linear_ds, k)
            for k in (
                "observations",
                "actions",
                "rewards",
                "terminals",
                "timeouts",
                "next_observations",
            )
        },
        metadata=md,
    )
    assert np.flatnonzero(corruption_mask(ds)).tolist() == [7]
    assert corruption_mask(linear_ds) is None


def test_knn_dynamics_flags_without_trajectories():
    # every transition its own episode: no continuity to check, the k-NN residual must do the work
    rng = np.random.default_rng(0)
    n = 4000
    obs = rng.uniform(-1, 1, size=(n, 3))
    act = rng.uniform(-1, 1, size=(n, 1))
    nxt = obs + 0.1 * np.sin(3 * obs) + 0.2 * act
    bad = rng.choice(n, 20, replace=False)
    nxt[bad] += rng.choice([-1, 1], size=(20, 3)) * 1.5
    ds = Dataset(
        observations=obs,
        actions=act,
        rewards=np.zeros(n),
        terminals=np.ones(n),
        next_observations=nxt,
    )
    flags = detect_anomalies(ds)
    assert not flags.continuity_checked
    assert flags.flags["dynamics"][bad].mean() >= 0.9
    assert flags.flags["dynamics"].sum() <= 30


def test_random_actions_of_a_consistent_policy_are_flagged(make_linear_ds):
    ds = make_linear_ds(policy_noise=0.01)
    arrays = {k: getattr(ds, k).copy() for k in ARRAY_FIELDS}
    rows = np.array([150, 1230, 2777, 3301])
    arrays["actions"][rows] = -np.sign(arrays["actions"][rows])
    flagged = detect_anomalies(Dataset(**arrays, metadata=ds.metadata)).flags["action"]
    assert flagged[rows].all()
    assert flagged.sum() <= 10


@pytest.mark.parametrize("n", [3, 12])
def test_tiny_datasets_do_not_crash(n):
    ds = Dataset(
        observations=np.arange(n * 2.0).reshape(n, 2),
        actions=np.zeros((n, 1)),
        rewards=np.ones(n),
        terminals=np.r_[np.zeros(n - 1), 1],
    )
    card = diagnose(ds, reference=ds)
    assert card.anomalies["counts"]["any"] >= 0


@pytest.mark.parametrize("target", ["observations", "dynamics", "rewards"])
def test_flags_against_data_corrupt_masks(linear_ds, target):
    # the corruption protocol of Yang et al. 2024 as implemented by `policyfit data corrupt`
    from policyfit.data.corrupt import random_corruption

    bad = random_corruption(linear_ds, target, rate=0.1, scale=1.0, seed=0)
    card = diagnose(bad, reference=None)
    pr = card.anomalies["precision_recall"]
    assert pr["corruption"]["target"] == target
    assert pr["any"]["precision"] > 0.95
    assert pr["any"]["recall"] > (0.95 if target != "rewards" else 0.5)
