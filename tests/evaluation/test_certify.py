"""Policy smoothing certificates: a hand-computed value, and never above what the policy gets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policyfit.errors import PolicyfitError
from policyfit.evaluation.certify import (
    certify_policy,
    dkw_epsilon,
    format_certificate_table,
    plot_certificate,
    smoothing_certificate,
)
from policyfit.evaluation.stats import figure_png_bytes


def test_certificate_equals_hand_computed_value():
    # m = 4 returns 1, 2, 3, 4 (floor 0), alpha = 0.5: eps = sqrt(ln 4 / 8) = 0.4162773.
    # 1 - F_hat(v_i) = 0.75, 0.5, 0.25, 0 -> p = 0.3337227, 0.0837227, 0, 0; every step is 1.
    assert dkw_epsilon(4, 0.5) == pytest.approx(0.4162773, abs=1e-7)
    b0, b_half = smoothing_certificate([4.0, 2.0, 3.0, 1.0], 1.0, [0.0, 0.5], alpha=0.5, floor=0.0)
    assert b0 == pytest.approx(0.3337227 + 0.0837227, abs=1e-6)
    # B / sigma = 0.5: Phi(Phi^-1(0.3337227) - 0.5) + Phi(Phi^-1(0.0837227) - 0.5)
    #                = Phi(-0.42960 - 0.5) + Phi(-1.38019 - 0.5) = 0.17627 + 0.03003
    assert b_half == pytest.approx(0.17627 + 0.03003, abs=1e-4)
    # Shifting returns and floor together shifts the bound; sigma scales with the budget.
    shifted = smoothing_certificate([5.0, 3.0, 4.0, 2.0], 2.0, 1.0, alpha=0.5, floor=1.0)
    assert shifted == pytest.approx(1.0 + b_half, abs=1e-9)


def test_certificate_never_exceeds_the_empirical_mean_and_falls_with_budget():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = int(rng.integers(5, 300))
        returns = rng.gamma(2.0, 50.0, size=m) - 20.0
        bounds = smoothing_certificate(returns, 0.3, np.linspace(0, 2, 9), floor=-20.0)
        assert bounds[0] <= returns.mean() + 1e-9
        assert np.all(np.diff(bounds) <= 1e-12)
        assert bounds[-1] >= -20.0 - 1e-9  # never below the floor
    # Default floor (smallest observed return) is reported as such and still below the mean.
    r = rng.normal(100.0, 10.0, size=200)
    assert r.min() <= smoothing_certificate(r, 0.5, 0.1) <= r.mean()


def test_bad_arguments_are_user_errors():
    with pytest.raises(PolicyfitError, match="floor"):
        smoothing_certificate([1.0, 2.0], 1.0, 0.0, floor=1.5)
    with pytest.raises(PolicyfitError, match="sigma"):
        smoothing_certificate([1.0, 2.0], 0.0, 0.0)
    with pytest.raises(PolicyfitError, match="alpha"):
        smoothing_certificate([1.0, 2.0], 1.0, 0.0, alpha=1.5)


def _pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """A decent hand-made swing-up-free stabilizer: torque against angle and angular velocity."""
    cos, sin, vel = obs[..., 0], obs[..., 1], obs[..., 2]
    theta = np.arctan2(sin, cos)
    return np.clip(-(6.0 * theta + 1.5 * vel), -2.0, 2.0)[..., None]


def test_certificate_sits_below_smoothed_and_attacked_returns_in_an_environment():
    # Pendulum: per-step reward >= -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2) = -16.2736, 200 steps,
    # so floor = -16.2736 * 200 is a true lower bound of every return and we certify E[R].
    floor = -(math.pi**2 + 0.1 * 64 + 0.001 * 4) * 200
    rep = certify_policy(
        _pendulum_controller,
        "Pendulum-v1",
        [0.05, 0.2],
        budget=0.5,
        episodes=40,
        attack_episodes=20,
        floor=floor,
        grid=6,
        seed=3,
    )
    assert rep.floor_kind == "given"
    for row in rep.rows:
        assert row["bounds"][0] <= row["clean_return_mean"]
        assert row["bound_at_budget"] == pytest.approx(row["bounds"][-1])
        assert row["bound_at_budget"] <= row["attacked_return_mean"]
        assert row["bound_below_attack"]
    # Larger smoothing noise certifies more robustness per unit of budget: the bound drops less.
    drop = [r["bounds"][0] - r["bounds"][-1] for r in rep.rows]
    assert drop[1] < drop[0]
    assert "| σ |" in format_certificate_table(rep)
    assert figure_png_bytes(plot_certificate(rep))[:4] == b"\x89PNG"
