"""Shared losses against values computed by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from policyfit.algos.losses import (
    awr_weights,
    ensemble_quantile,
    expectile_loss,
    huber_loss,
    soft_update,
    td_target,
)


def test_expectile_loss_weights_positive_and_negative_errors_asymmetrically():
    diff = jnp.array([2.0, -2.0, 0.5, 0.0])
    # tau = 0.7: 0.7 * 4, 0.3 * 4, 0.7 * 0.25, 0
    np.testing.assert_allclose(expectile_loss(diff, 0.7), [2.8, 1.2, 0.175, 0.0], rtol=1e-6)
    # tau = 0.5 is half the squared error
    np.testing.assert_allclose(expectile_loss(diff, 0.5), 0.5 * np.asarray(diff) ** 2, rtol=1e-6)


def test_expectile_regression_recovers_the_expectile():
    # The minimizer of E[L_tau(x - v)] over v is the tau-expectile of x.
    x = jnp.array([0.0, 1.0, 10.0])
    grid = jnp.linspace(0.0, 10.0, 100_001)
    loss = expectile_loss(x[None, :] - grid[:, None], 0.9).mean(1)
    v = float(grid[jnp.argmin(loss)])
    # 0.9-expectile solves 0.9 * (10 - v) = 0.1 * (v - 0) + 0.1 * (v - 1)  ->  v = 9.1 / 1.1
    assert v == pytest.approx(9.1 / 1.1, abs=1e-3)


def test_huber_loss_quadratic_inside_linear_outside():
    diff = jnp.array([0.5, -0.5, 3.0, -3.0])
    # delta = 1: 0.5 * 0.25 / 1, same, 3 - 0.5, same
    np.testing.assert_allclose(huber_loss(diff, 1.0), [0.125, 0.125, 2.5, 2.5], rtol=1e-6)
    # delta = 2: 0.25 / 4, same, 3 - 1, same
    np.testing.assert_allclose(huber_loss(diff, 2.0), [0.0625, 0.0625, 2.0, 2.0], rtol=1e-6)


def test_ensemble_quantile_min_and_quantile():
    q = jnp.array([[1.0, 5.0], [3.0, 2.0], [2.0, 8.0], [4.0, 4.0], [0.0, 6.0]])  # K=5, B=2
    np.testing.assert_allclose(ensemble_quantile(q, None), [0.0, 2.0])
    np.testing.assert_allclose(ensemble_quantile(q, 0.5), [2.0, 5.0])
    # 0.25-quantile, linear interpolation at position 0.25 * 4 = 1 of the sorted values
    np.testing.assert_allclose(ensemble_quantile(q, 0.25), [1.0, 4.0])
    np.testing.assert_allclose(ensemble_quantile(q, 0.1), [0.4, 2.8], rtol=1e-6)


def test_awr_weights_are_exponential_and_clipped():
    adv = jnp.array([0.0, 1.0, -1.0, 10.0])
    np.testing.assert_allclose(
        awr_weights(adv, 3.0, 100.0), [1.0, np.exp(3.0), np.exp(-3.0), 100.0], rtol=1e-6
    )


def test_soft_update_and_td_target():
    target = {"w": jnp.array([0.0, 10.0])}
    online = {"w": jnp.array([1.0, 0.0])}
    np.testing.assert_allclose(soft_update(target, online, 0.1)["w"], [0.1, 9.0], rtol=1e-6)
    y = td_target(jnp.array([1.0, 1.0]), jnp.array([0.0, 1.0]), jnp.array([10.0, 10.0]), 0.9)
    np.testing.assert_allclose(y, [10.0, 1.0])  # terminals stop the bootstrap
