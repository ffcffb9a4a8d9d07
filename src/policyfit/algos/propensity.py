"""Log-probabilities of given actions under a policy's own distribution (``action_log_prob``).

What :meth:`policyfit.algos.base.Algorithm.action_log_prob` returns, for the two kinds of actor:

* discrete (categorical logits): ``log softmax(logits)[a]``, a log-probability;
* continuous: the log-density of the action **in the environment's action box** (the algorithm
  acts in ``[-1, 1]`` and maps to the box with :func:`~policyfit.nn.normalization.from_unit_actions`,
  so the density in the box is the unit density divided by ``prod half_range``). Gaussian actors
  whose samples are clipped to the box when acting (BC's ``gaussian`` policy, IQL, AWAC, RvS-R)
  put a point mass on each bound: a coordinate that sits on a bound contributes the log of that
  mass (``log Phi((-1 - mu) / sigma)`` or ``log Phi((mu - 1) / sigma)``) instead of a density, so
  the value is a density with respect to "Lebesgue inside the box plus an atom on each bound".
  Importance ratios between two such policies are taken with respect to the same measure.

Example:
    >>> import jax.numpy as jnp
    >>> float(jnp.exp(categorical_log_prob(jnp.log(jnp.array([[0.25, 0.75]])), jnp.array([1])))[0])
    0.75
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from policyfit.nn.modules import Normal, TanhNormal
from policyfit.nn.normalization import to_unit_actions

# A unit-space coordinate this close to +-1 is taken to sit on the bound (an action clipped to the
# box and mapped there and back through the action scale moves by float32 rounding only).
BOUND_TOLERANCE = 1e-5


def categorical_log_prob(logits: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
    """``log pi(a|s)`` ``[B]`` of integer ``actions`` ``[B]`` under the softmax of ``logits``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_probs, actions.astype(jnp.int32)[:, None], axis=-1)[:, 0]


def box_action_log_prob(
    dist: Normal | TanhNormal, actions: jnp.ndarray, scale: dict[str, Any], clipped: bool
) -> jnp.ndarray:
    """Log-density ``[B]`` of environment-space ``actions`` ``[B, d]`` under a unit-space ``dist``.

    ``scale`` is the algorithm's ``action_scale`` (``center``, ``half_range``); ``clipped`` says
    that acting clips the samples of a :class:`Normal` to ``[-1, 1]`` (see the module docstring).
    """
    unit = to_unit_actions(actions, scale)
    log_jacobian = jnp.log(scale["half_range"])
    if isinstance(dist, TanhNormal):
        return dist.log_prob(unit) - jnp.sum(log_jacobian)
    std = jnp.exp(dist.log_std)
    z = (unit - dist.mean) / std
    density = -0.5 * z**2 - dist.log_std - 0.5 * jnp.log(2 * jnp.pi) - log_jacobian
    if not clipped:
        return jnp.sum(density, axis=-1)
    lower_mass = norm.logcdf((-1.0 - dist.mean) / std)
    upper_mass = norm.logcdf((dist.mean - 1.0) / std)
    per_dim = jnp.where(
        unit <= -1.0 + BOUND_TOLERANCE,
        lower_mass,
        jnp.where(unit >= 1.0 - BOUND_TOLERANCE, upper_mass, density),
    )
    return jnp.sum(per_dim, axis=-1)
