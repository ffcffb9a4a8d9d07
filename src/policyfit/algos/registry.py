"""The algorithm registry: name -> :class:`~policyfit.algos.base.Algorithm` class.

Algorithms register themselves with ``@register("name")`` (:func:`policyfit.algos.base.register`);
importing this module imports every built-in algorithm so that all of them are registered.

Example:
    >>> from policyfit.algos.registry import get_algorithm
    >>> get_algorithm("iql").Config().expectile
    0.7
    >>> get_algorithm("TD3+BC").name
    'td3bc'
"""

from __future__ import annotations

# Imported for their @register side effect: each module registers its algorithm classes.
from policyfit.algos import (  # noqa: F401
    a2pr,
    awac,
    bc,
    bcq_discrete,
    bve,
    cql,
    cql_discrete,
    crr,
    discrete_bc,
    dqn,
    dt,
    iql,
    mce,
    prdc,
    qrdqn,
    rebrac,
    rem,
    rvs,
    td3bc,
    vgps,
)
from policyfit.algos.base import ALGORITHMS, Algorithm, find_algorithm

__all__ = ["ALGORITHMS", "get_algorithm"]


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name`` (case, ``-``, ``_``, ``+`` ignored).

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    return find_algorithm(name)
