"""Algorithm.action_log_prob: a probability (discrete) or a density in the action box (continuous)
that integrates to one, atoms on the bounds included; policies without a distribution refuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from policyfit.algos.base import DatasetSpec
from policyfit.algos.registry import get_algorithm

OBS = np.array([[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]], np.float32)
LOW, HIGH = -2.0, 3.0  # a box that is not [-1, 1]: the density must include the action scale


def initial(name: str, config: dict, discrete: bool):
    cls = get_algorithm(name)
    algo = cls(cls.Config.from_dict({"hidden_dims": (8,), **config}))
    if discrete:
        spec = DatasetSpec(observation_dim=3, action_dim=4, discrete=True)
    else:
        spec = DatasetSpec(
            observation_dim=3,
            action_dim=1,
            action_low=(LOW,),
            action_high=(HIGH,),
            max_episode_length=10,
            return_max=5.0,
        )
    state = algo.init(spec, jax.random.PRNGKey(0))
    params = algo.policy_params(state)
    return algo, params, algo.initial_carry(OBS.shape[0])


@pytest.mark.parametrize("name", ["discrete_bc", "crr"])
def test_discrete_probabilities_sum_to_one_and_peak_at_the_greedy_action(name):
    algo, params, carry = initial(name, {}, True)
    logp = np.stack(
        [
            np.asarray(algo.action_log_prob(params, OBS, carry, jnp.full(2, a, jnp.int32)))
            for a in range(4)
        ],
        axis=1,
    )
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-5)
    greedy, _ = algo.act(params, OBS, carry)
    assert np.argmax(logp, axis=1).tolist() == np.asarray(greedy).tolist()


@pytest.mark.parametrize(
    "name,config,clipped",
    [
        ("bc", {"policy": "gaussian"}, True),
        ("iql", {}, True),
        ("awac", {}, True),
        ("rvs_r", {}, True),
        ("cql", {}, False),
    ],
)
def test_continuous_density_integrates_to_one_over_the_box(name, config, clipped):
    algo, params, carry = initial(name, config, False)
    inside = np.linspace(LOW, HIGH, 40_001)[1:-1]

    def prob(actions: np.ndarray) -> np.ndarray:
        """``exp(log_prob)`` ``[len(actions), 2]`` of each action for both observations."""
        out = []
        for a in actions.reshape(-1, 1):
            acts = jnp.full((2, 1), a[0], jnp.float32)
            out.append(np.exp(np.asarray(algo.action_log_prob(params, OBS, carry, acts))))
        return np.array(out)

    batched = jax.jit(
        jax.vmap(lambda a: algo.action_log_prob(params, OBS, carry, jnp.full((2, 1), a)), in_axes=0)
    )
    density = np.exp(np.asarray(batched(jnp.asarray(inside, jnp.float32))))
    mass = np.trapezoid(density, inside, axis=0)
    atoms = prob(np.array([LOW, HIGH])).sum(axis=0) if clipped else 0.0
    np.testing.assert_allclose(mass + atoms, 1.0, atol=2e-3)
    if clipped:  # a Gaussian clipped to the box puts real mass on each bound
        assert np.all(atoms > 1e-3)


@pytest.mark.parametrize(
    "name,config,discrete",
    [
        ("dqn", {}, True),
        ("bcq_discrete", {}, True),
        ("td3bc", {}, False),
        ("bc", {}, False),
        ("iql", {"deterministic_actor": True}, False),
    ],
)
def test_policies_without_a_distribution_refuse(name, config, discrete):
    algo, params, carry = initial(name, config, discrete)
    actions, _ = algo.act(params, OBS, carry)
    with pytest.raises(NotImplementedError, match="no action distribution"):
        algo.action_log_prob(params, OBS, carry, actions)
