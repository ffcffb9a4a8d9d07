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

import dataclasses
import re
import sys
from typing import Any

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
    demo_reg,
    discrete_bc,
    doc,
    dqn,
    dt,
    iql,
    lipschitz_bc,
    mbrcsl,
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

__all__ = ["ALGORITHMS", "get_algorithm", "paper_settings"]


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name`` (case, ``-``, ``_``, ``+`` ignored).

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    return find_algorithm(name)


def paper_settings(name: str, dataset: str) -> dict[str, Any]:
    """The per-environment config an algorithm's paper or official code used for ``dataset``.

    An algorithm module may define ``PAPER_SETTINGS = {family: {field: value}}`` (e.g. PRDC's
    README: ``{"halfcheetah": {"alpha": 40.0, ...}}``); the family is matched as a word of the
    dataset's name or id (``halfcheetah-medium``, ``mujoco/halfcheetah/medium-v0``, a path to
    ``hopper-medium.hdf5``). Keys that are not fields of the algorithm's config (PRDC's antmaze
    reward scaling, done by the data pipeline) are left out. No match: ``{}``.

    Example:
        >>> paper_settings("prdc", "halfcheetah-medium")["alpha"]
        40.0
        >>> paper_settings("iql", "hopper-medium")
        {}
    """
    cls = get_algorithm(name)
    table = getattr(sys.modules[cls.__module__], "PAPER_SETTINGS", None) or {}
    words = set(re.split(r"[^a-z0-9]+", str(dataset).lower()))
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for family, settings in table.items():
        if family.lower() in words:
            return {k: v for k, v in settings.items() if k in fields}
    return {}
