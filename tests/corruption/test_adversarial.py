"""Adversarial corruption stays inside the budget and lowers the clean critic's Q more than random noise."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.corruption import corrupt_dataset
from policyfit.corruption.adversarial import AttackConfig, adversarial_perturbation
from policyfit.data.corrupt import TARGET_FIELD, feature_std

from .conftest import TINY_CRITIC

EPS = 1.0


@pytest.fixture(scope="module")
def attacked(clean, critic):
    """Adversarial and random corruption of each gradient target, same seed (same rows)."""
    out = {}
    for target in ("observations", "actions", "dynamics"):
        kw = {"rate": 0.3, "scale": EPS, "seed": 0}
        out[target] = (
            corrupt_dataset(clean, target, mode="adversarial", critic=critic, **kw),
            corrupt_dataset(clean, target, mode="random", **kw),
        )
    return out


def critic_value(critic, ds, target, rows):
    """The quantity each attack minimizes, ensemble mean per row."""
    if target == "dynamics":
        s2 = ds.next_observations[rows]
        return critic.q_values(s2, critic.policy_actions(s2)).mean(0)
    return critic.q_values(ds.observations[rows], ds.actions[rows]).mean(0)


@pytest.mark.parametrize("target", ["observations", "actions", "dynamics"])
def test_perturbation_stays_inside_eps_times_std(clean, attacked, target):
    adv, _ = attacked[target]
    field = TARGET_FIELD[target]
    mask = adv.metadata["extra_arrays"]["corrupted"]
    assert abs(mask.mean() - 0.3) < 0.05
    std = feature_std(getattr(clean, field))
    delta = getattr(adv, field).astype(np.float64) - getattr(clean, field)
    assert np.all(np.abs(delta) <= EPS * std * (1 + 1e-5) + 1e-6)
    assert np.abs(delta[mask] / std).max() > 0.9 * EPS  # the budget is used, not ignored
    np.testing.assert_array_equal(np.any(delta != 0, axis=1), mask)
    for other in ("observations", "actions", "rewards", "next_observations"):
        if other != field:
            np.testing.assert_array_equal(getattr(adv, other), getattr(clean, other))
    if target == "actions":
        assert adv.actions.min() >= -1.0 and adv.actions.max() <= 1.0


@pytest.mark.parametrize("target", ["observations", "actions", "dynamics"])
def test_attack_lowers_clean_q_below_clean_and_random(clean, critic, attacked, target):
    adv, rnd = attacked[target]
    rows = adv.metadata["extra_arrays"]["corrupted"]
    np.testing.assert_array_equal(rows, rnd.metadata["extra_arrays"]["corrupted"])  # same rows
    q_clean = critic_value(critic, clean, target, rows)
    q_adv = critic_value(critic, adv, target, rows)
    q_rnd = critic_value(critic, rnd, target, rows)
    assert q_adv.mean() < q_rnd.mean() and q_adv.mean() < q_clean.mean()
    assert (q_adv < q_clean).mean() > 0.9
    attack = adv.metadata["corruption"]["attack"]
    assert attack["q_clean_mean"] == pytest.approx(q_clean.mean(), rel=1e-3, abs=1e-3)
    assert attack["q_attacked_mean"] == pytest.approx(q_adv.mean(), rel=1e-3, abs=1e-3)


def test_metadata_and_card_describe_the_critic(attacked):
    adv, _ = attacked["dynamics"]
    info = adv.metadata["corruption"]
    assert info["mode"] == "adversarial" and info["field"] == "next_observations"
    assert info["critic"]["config"]["n_critics"] == TINY_CRITIC.n_critics
    assert info["attack"]["steps"] == 100 and info["attack"]["learning_rate"] == pytest.approx(0.01)
    card = adv.metadata["card"]["corruption"]
    assert "EnsembleCritic" in card and "EDAC" in card and "clean data" in card


def test_same_seed_same_adversarial_corruption(clean, critic, attacked):
    again = corrupt_dataset(
        clean, "observations", mode="adversarial", rate=0.3, scale=EPS, seed=0, critic=critic
    )
    assert again.fingerprint() == attacked["observations"][0].fingerprint()


def test_fresh_adam_step_is_a_signed_gradient_step(clean, critic):
    """One step from p = 0 moves every coordinate by exactly lr = 0.01·ε against the gradient."""
    s, a = clean.observations[:64], clean.actions[:64]
    std = feature_std(clean.observations)
    p, q0, q1 = adversarial_perturbation(
        critic,
        "observations",
        s,
        a,
        std,
        scale=0.5,
        p0=np.zeros_like(s),
        attack=AttackConfig(steps=1),
    )
    np.testing.assert_allclose(np.abs(p), 0.005, rtol=1e-3)
    assert np.all(q1 <= q0 + 1e-6)


def test_nothing_selected_needs_no_critic(clean):
    """rate 0: no transition is attacked, so no critic is fitted (critic=None is never used)."""
    bad = corrupt_dataset(clean, "actions", mode="adversarial", rate=0.0, seed=0)
    assert bad.metadata["corruption"]["n_corrupted"] == 0
    assert "critic" not in bad.metadata["corruption"]
    np.testing.assert_array_equal(bad.actions, clean.actions)
