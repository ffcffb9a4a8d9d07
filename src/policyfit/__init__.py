"""policyfit: learn decision policies from logged data.

The public API (everything the CLI uses):

>>> import policyfit
>>> ds = policyfit.load_dataset("path/to/data.hdf5")            # doctest: +SKIP
>>> result = policyfit.train("iql", ds, steps=10_000, seed=0)    # doctest: +SKIP
>>> policy = policyfit.load_policy(result.run_dir)               # doctest: +SKIP
>>> action = policy(ds.observations[0])                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyfit.data.dataset import Dataset
    from policyfit.diagnostics.card import DataCard

__version__ = "0.1.0"


# Public name -> module that defines it. Imported lazily so `import policyfit` stays fast.
_PUBLIC = {
    "Dataset": "policyfit.data.dataset",
    "load_dataset": "policyfit.envs.datasets",
    "save_dataset": "policyfit.data.io",
    "make_dataset": "policyfit.envs.datasets",
    "corrupt_dataset": "policyfit.corruption",
    "DataCard": "policyfit.diagnostics.card",
    "train": "policyfit.training.trainer",
    "TrainResult": "policyfit.training.trainer",
    "evaluate": "policyfit.evaluation.rollout",
    "write_report": "policyfit.report",
    "return_summary": "policyfit.evaluation.stats",
    "aggregate_scores": "policyfit.evaluation.stats",
    "fitted_q_evaluation": "policyfit.evaluation.ope",
    "FQEConfig": "policyfit.evaluation.ope",
    "FQEResult": "policyfit.evaluation.ope",
    "certify_policy": "policyfit.evaluation.certify",
    "smoothing_certificate": "policyfit.evaluation.certify",
    "CertificateReport": "policyfit.evaluation.certify",
    "run_sweep": "policyfit.sweep",
    "compare_runs": "policyfit.sweep",
    "load_policy": "policyfit.training.rundir",
    "Policy": "policyfit.algos.policy",
    "RunDir": "policyfit.training.rundir",
    "ALGORITHMS": "policyfit.algos.registry",
    "get_algorithm": "policyfit.algos.registry",
    "PolicyfitError": "policyfit.errors",
    "DatasetError": "policyfit.errors",
    "ConfigError": "policyfit.errors",
}

__all__ = sorted([*_PUBLIC, "diagnose"])


def diagnose(
    dataset: Dataset,
    reference: Dataset | str | None = "auto",
    ref_scores: tuple[float, float] | dict[str, float] | None = None,
    *,
    bins: int = 100,
    k: int = 8,
    sample_size: int = 10_000,
    z_threshold: float = 6.0,
    exact_max_rows: int = 5_000_000,
    seed: int = 0,
    reference_resolver: Callable[[Dataset], tuple[Dataset, str]] | None = None,
) -> DataCard:
    """Measure a dataset's quality and return a :class:`~policyfit.diagnostics.card.DataCard`.

    :func:`policyfit.diagnostics.card.diagnose` with one default filled in: ``reference="auto"``
    is the built-in suite's ``<env>-medium-replay`` when it is cached
    (:func:`policyfit.envs.datasets.suite_reference`), as in ``policyfit data inspect --full``.
    The diagnostics never import the suite (they sit below it); this is where the two meet. See
    that function for the arguments.

    Example:
        >>> card = policyfit.diagnose(policyfit.load_dataset("hopper-medium"))   # doctest: +SKIP
        >>> card.to_dict()["trajectory_quality"]["value"]                         # doctest: +SKIP
    """
    from policyfit.diagnostics.card import diagnose as diagnose_dataset
    from policyfit.envs.datasets import suite_reference

    return diagnose_dataset(
        dataset,
        reference,
        ref_scores,
        bins=bins,
        k=k,
        sample_size=sample_size,
        z_threshold=z_threshold,
        exact_max_rows=exact_max_rows,
        seed=seed,
        reference_resolver=reference_resolver or suite_reference,
    )


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'policyfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
