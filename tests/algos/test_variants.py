"""Variants are config flags: CQL-Lagrange and Robust IQL (ensemble quantile + Huber) train."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pendulum_data import pendulum_dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.registry import get_algorithm
from policyfit.common.xla import compiler_options
from policyfit.data.sampler import TransitionSampler
from policyfit.training.trainer import make_train_chunk


@pytest.fixture(scope="module")
def dataset():
    return pendulum_dataset(episodes=3)


def run_updates(name, overrides, ds, n=5):
    cls = get_algorithm(name)
    algo = cls(cls.Config.from_dict({"hidden_dims": (16, 16), "batch_size": 32, **overrides}))
    spec = DatasetSpec.from_dataset(ds)
    opts = compiler_options(True)
    state = jax.jit(algo.init, static_argnums=0, compiler_options=opts)(spec, jax.random.PRNGKey(0))
    sampler = TransitionSampler(ds)
    chunk = make_train_chunk(algo, sampler, jax.random.PRNGKey(1), 32, opts)
    new_state, metrics = chunk(state, sampler.data, jnp.int32(0), n)
    for key, value in metrics.items():
        assert np.isfinite(float(value)), key
    assert int(new_state["step"]) == n
    return state, new_state


def test_cql_lagrange_tunes_alpha_prime(dataset):
    before, after = run_updates(
        "cql", {"lagrange": True, "cql_n_actions": 2, "bc_steps": 2}, dataset
    )
    assert float(after["log_alpha_prime"]) != float(before["log_alpha_prime"])


def test_robust_iql_flags(dataset):
    overrides = {"n_critics": 5, "value_quantile": 0.25, "huber_delta": 1.0}
    _, state = run_updates("iql", overrides, dataset)
    kernels = jax.tree_util.tree_leaves(state["critic"])
    assert all(k.shape[0] == 5 for k in kernels)  # an ensemble of K = 5 critics
