"""Lipschitz-constrained BC: the projection by hand, the exact bound by hand (raw observations:
the normalization's 1/std and the action box's half range are inside it), the certificate of a
trained policy against empirical ratios, and learning on the Pendulum data at a loose bound.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.lipschitz_bc import (
    ROUNDING_MARGIN,
    LipschitzBC,
    LipschitzBCConfig,
    layer_budget,
    lipschitz_bound,
    project_kernel,
)
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.rundir import load_policy
from policyfit.training.trainer import train

SMALL = {"hidden_dims": (64, 64), "batch_size": 128}


def test_projection_of_a_2x2_kernel_by_hand():
    # [[3, 4], [0, 0]] has singular values 5 and 0; budget 2 scales it by 2/5
    w = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    sigma = jnp.linalg.norm(w, 2)
    np.testing.assert_allclose(project_kernel(w, sigma, 2.0), [[1.2, 1.6], [0.0, 0.0]], atol=1e-6)
    # [[2, 1], [1, 2]]: singular values 3 and 1; a budget above 3 leaves it alone
    w = jnp.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(project_kernel(w, jnp.float32(3.0), 3.5), w)
    np.testing.assert_allclose(
        project_kernel(w, jnp.float32(3.0), 1.5), [[1.0, 0.5], [0.5, 1.0]], atol=1e-6
    )
    assert layer_budget(8.0, 3) == pytest.approx(2.0 * (1 - ROUNDING_MARGIN), rel=1e-12)


def _hand_params(std, half_range):
    """obs 2 -> hidden 2 (ReLU) -> action 1 (tanh); kernels set by hand."""
    actor = {
        "params": {
            "MLP_0": {
                "Dense_0": {"kernel": jnp.array([[3.0, 0.0], [0.0, 1.0]]), "bias": jnp.zeros(2)}
            },
            "Dense_0": {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)},
        }
    }
    return {
        "actor": actor,
        "obs_norm": {"mean": jnp.zeros(2), "std": jnp.asarray(std)},
        "action_scale": {"center": jnp.zeros(1), "half_range": jnp.asarray(half_range)},
    }


def test_exact_bound_includes_the_observation_std_and_the_action_range():
    # no scaling: sigma([[3,0],[0,1]]) * sigma([[1],[1]]) = 3 * sqrt(2)
    assert lipschitz_bound(_hand_params([1.0, 1.0], [1.0])) == pytest.approx(3 * math.sqrt(2))
    # std (1, 0.25): diag(1, 4) [[3,0],[0,1]] = [[3,0],[0,4]] -> 4; half range 2 -> 2 sqrt(2)
    assert lipschitz_bound(_hand_params([1.0, 0.25], [2.0])) == pytest.approx(8 * math.sqrt(2))


def test_init_projects_onto_the_budget_and_the_update_keeps_it():
    spec = DatasetSpec(3, 2, obs_mean=(0.0,) * 3, obs_std=(0.05, 1.0, 2.0), action_low=(-2.0, -1.0),
                       action_high=(2.0, 1.0))  # fmt: skip
    algo = LipschitzBC(LipschitzBCConfig(lipschitz=0.5, hidden_dims=(8, 8)))
    state = algo.init(spec, jax.random.PRNGKey(0))
    params = algo.policy_params(state)
    assert lipschitz_bound(params) <= 0.5
    c = 0.5 ** (1 / 3) * (1 - 1e-5)  # the budget, less the rounding margin
    # 1/std = 20 on the first input: the random first layer is far above its budget and lands on
    # it exactly; the hidden layer binds too; the head starts small (init scale 1e-2) and stays
    first = np.asarray(params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"], np.float64)
    hidden = np.asarray(params["actor"]["params"]["MLP_0"]["Dense_1"]["kernel"], np.float64)
    std = np.array([0.05, 1.0, 2.0]) + 1e-3  # the normalization's eps (TD3+BC, CORL)
    assert np.linalg.norm(first / std[:, None], 2) == pytest.approx(c, rel=2e-6)
    assert np.linalg.norm(hidden, 2) == pytest.approx(c, rel=2e-6)
    rng = np.random.default_rng(0)
    batch = {
        "observations": jnp.asarray(rng.normal(size=(32, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, size=(32, 2)), jnp.float32),
    }
    update = jax.jit(algo.update)
    for _ in range(20):
        state, metrics = update(state, batch, jax.random.PRNGKey(1))
    assert float(metrics["lipschitz_estimate"]) <= 0.5 + 1e-4
    assert lipschitz_bound(algo.policy_params(state)) <= 0.5 + 1e-6


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf")])
def test_a_bad_bound_is_a_config_error(value):
    algo = LipschitzBC(LipschitzBCConfig(lipschitz=value))
    with pytest.raises(ConfigError, match="must be a positive number") as err:
        algo.setup(DatasetSpec(3, 1))
    assert err.value.field == "lipschitz"


@pytest.fixture(scope="module")
def dataset():
    return pendulum_dataset()


def _train(dataset, lipschitz, out):
    return train(
        "lipschitz_bc",
        dataset,
        steps=1500,
        seed=0,
        config={**SMALL, "lipschitz": lipschitz},
        out=out,
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=True,
    )


def test_trained_policy_is_certified_and_no_pair_exceeds_the_bound(dataset, tmp_path):
    L = 5.0  # plain BC reaches ~30 here: the constraint binds
    result = _train(dataset, L, tmp_path / "run")
    saved = load_policy(tmp_path / "run")
    bound = lipschitz_bound(saved.params)
    assert bound <= L + 1e-4
    assert bound > 0.5 * L  # the fit uses its budget (not a policy squashed to a constant)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    estimates = [r["train/lipschitz_estimate"] for r in rows if "train/lipschitz_estimate" in r]
    assert estimates and max(estimates) <= L + 1e-3

    rng = np.random.default_rng(0)
    obs = dataset.observations[rng.integers(0, len(dataset), 2000)].astype(np.float64)
    far = obs[rng.permutation(2000)]  # pairs across the data
    near = obs + 1e-2 * rng.normal(size=obs.shape)  # pairs close together: local slopes
    ratios = []
    for other in (far, near):
        x, y = obs.astype(np.float32), other.astype(np.float32)
        dist = np.linalg.norm(x.astype(np.float64) - y, axis=1)
        x, y, dist = x[dist > 1e-3], y[dist > 1e-3], dist[dist > 1e-3]  # no pair with itself
        num = np.linalg.norm(
            np.asarray(saved(x), np.float64) - np.asarray(saved(y), np.float64), axis=1
        )
        ratios.append(num / dist)
    ratios = np.concatenate(ratios)
    assert ratios.max() <= bound * (1 + 1e-3), ratios.max()
    assert ratios.max() > 0.05 * bound  # the check is not vacuous
    np.testing.assert_allclose(
        np.asarray(result.policy(obs[:5].astype(np.float32))), saved(obs[:5].astype(np.float32))
    )


def test_learns_better_than_random_at_a_loose_bound(dataset, tmp_path):
    result = _train(dataset, 50.0, tmp_path / "loose")
    final = result.summary["final_return_mean"]
    assert lipschitz_bound(result.policy.params) <= 50.0 + 1e-4
    # Random: about -1200 (std of a 5-episode mean: ~130); clearly better: 400 above it.
    assert final > RANDOM_RETURN + 400, f"final return {final:.0f}"


def test_bound_of_a_policy_without_a_deterministic_head_says_so():
    params = _hand_params([1.0, 1.0], [1.0])
    params["actor"] = {"params": {"MLP_0": params["actor"]["params"]["MLP_0"]}}
    with pytest.raises(PolicyfitError, match="not a deterministic MLP policy") as err:
        lipschitz_bound(params)
    assert err.value.field == "params"
