"""Corrupt a dataset the way Yang et al. (ICLR 2024) do — random or adversarial.

One entry point, :func:`corrupt_dataset`; random corruption (and adversarial rewards) is numpy-only
and lives in :mod:`policyfit.data.corrupt`, the gradient attacks and their critic live here.

Example:
    >>> import numpy as np
    >>> from policyfit.data import Dataset
    >>> from policyfit.corruption import corrupt_dataset
    >>> rng = np.random.default_rng(0)
    >>> ds = Dataset(observations=rng.normal(size=(500, 3)), actions=rng.uniform(-1, 1, (500, 2)),
    ...              rewards=rng.normal(size=500), terminals=np.arange(500) % 50 == 49)
    >>> bad = corrupt_dataset(ds, "dynamics", mode="random", rate=0.3, scale=1.0, seed=0)
    >>> int(bad.metadata["extra_arrays"]["corrupted"].sum()) == bad.metadata["corruption"]["n_corrupted"]
    True
"""

from __future__ import annotations

from typing import Any

from policyfit.data.corrupt import MODES, TARGETS, check_corruption_args, random_corruption
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError

__all__ = ["ADVERSARIAL_OPTIONS", "MODES", "TARGETS", "corrupt_dataset"]

# The keyword options of adversarial_corruption that corrupt_dataset passes through.
ADVERSARIAL_OPTIONS = ("critic", "critic_config", "attack", "cache")


def corrupt_dataset(
    dataset: Dataset,
    target: str,
    mode: str = "random",
    rate: float = 0.3,
    scale: float = 1.0,
    seed: int = 0,
    **adversarial_options: Any,
) -> Dataset:
    """Corrupt ``target`` of a fraction ``rate`` of the transitions of ``dataset``; returns a new dataset.

    Protocol of Yang et al. (ICLR 2024): each transition is corrupted independently with probability
    ``c = rate``. Random mode: observations / actions / next observations get ``x + U(-ε, ε)·std``
    (``std`` per dimension over the dataset), rewards are replaced by ``U(-30ε, 30ε)``; ``dynamics``
    changes ``next_observations`` only. Adversarial mode: ``δ = p·std``, ``|p| <= ε``, minimizing a
    Q-ensemble fitted on the clean data (100 projected Adam steps, lr ``0.01·ε``); rewards become
    ``-ε·r``. Paper defaults: ``c = 0.3``, ``ε = 1.0``.

    The output carries ``metadata["extra_arrays"]["corrupted"]`` (bool ``[N]``, the rows that changed)
    and ``metadata["corruption"]`` (target, mode, rate, scale, seed, counts, source fingerprint,
    measured scale, and for adversarial attacks the critic and the Q-values before/after); the data
    card says what was done. Same data and seed ⇒ the same corruption.

    Args:
        dataset: the dataset to corrupt (left unchanged).
        target: ``observations``, ``actions``, ``rewards`` or ``dynamics``.
        mode: ``random`` or ``adversarial``.
        rate: ``c`` in [0, 1].
        scale: ``ε`` >= 0.
        seed: selects the transitions and draws the noise.
        **adversarial_options: ``critic``, ``critic_config``, ``attack``, ``cache`` of
            :func:`policyfit.corruption.adversarial.adversarial_corruption`.

    Raises:
        PolicyfitError: an unknown target or mode, ``rate`` outside [0, 1], a negative ``scale``,
            a negative or non-integer ``seed``, action corruption of discrete actions.
        ConfigError: an unknown option, or adversarial options with ``mode="random"``.

    Example:
        >>> bad = corrupt_dataset(ds, "observations", mode="adversarial", rate=0.3)  # doctest: +SKIP
    """
    check_corruption_args(dataset, target, mode, rate, scale)
    unknown = sorted(set(adversarial_options) - set(ADVERSARIAL_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r}; corrupt_dataset takes "
            f"{', '.join(ADVERSARIAL_OPTIONS)} (adversarial mode only)",
            field=unknown[0],
        )
    if mode == "random":
        if adversarial_options:
            raise ConfigError(
                f"option(s) {', '.join(sorted(adversarial_options))} apply only to "
                "mode='adversarial'; drop them or pass mode='adversarial'",
                field="mode",
            )
        return random_corruption(dataset, target, rate=rate, scale=scale, seed=seed)
    from policyfit.corruption.adversarial import adversarial_corruption

    return adversarial_corruption(
        dataset, target, rate=rate, scale=scale, seed=seed, **adversarial_options
    )
