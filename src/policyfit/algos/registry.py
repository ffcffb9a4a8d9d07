"""The algorithm registry: name -> :class:`~policyfit.algos.base.Algorithm` class.

Example:
    >>> from policyfit.algos.registry import get_algorithm
    >>> get_algorithm("iql").Config().expectile
    0.7
"""

from __future__ import annotations

from policyfit.algos.awac import AWAC
from policyfit.algos.base import Algorithm
from policyfit.algos.bc import BC
from policyfit.algos.cql import CQL
from policyfit.algos.iql import IQL, RIQL
from policyfit.algos.rebrac import ReBRAC
from policyfit.algos.td3bc import TD3BC
from policyfit.errors import ConfigError

ALGORITHMS: dict[str, type[Algorithm]] = {
    "bc": BC,
    "td3bc": TD3BC,
    "iql": IQL,
    "riql": RIQL,
    "cql": CQL,
    "awac": AWAC,
    "rebrac": ReBRAC,
}


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name`` (case-insensitive); ConfigError lists valid names."""
    key = name.strip().lower().replace("+", "").replace("-", "").replace("_", "")
    if key not in ALGORITHMS:
        raise ConfigError(
            f"unknown algorithm; valid: {', '.join(sorted(ALGORITHMS))}",
            path=name,
            field="algorithm",
        )
    return ALGORITHMS[key]
